# The receiving end of --console-socket for test/native/commands.test.ts:
#   python3 console-receiver.py SOCKET OUT [INPUT]
# Accepts one connection, takes the pty master passed with SCM_RIGHTS, writes INPUT to it, reads
# everything the container prints until the slave side is gone (EIO), and writes to OUT the name
# that came with the descriptor, a newline, then the output.
import os
import socket
import sys

path, out = sys.argv[1], sys.argv[2]
data_in = sys.argv[3].encode() if len(sys.argv) > 3 else b""
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(path)
server.listen(1)
conn, _ = server.accept()
name, fds, _, _ = socket.recv_fds(conn, 1024, 1)
master = fds[0]
if data_in:
    os.write(master, data_in)
output = b""
while True:
    try:
        chunk = os.read(master, 4096)
    except OSError:
        break
    if not chunk:
        break
    output += chunk
with open(out, "wb") as f:
    f.write(name + b"\n" + output)
