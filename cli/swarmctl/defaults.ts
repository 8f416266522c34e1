/** Where swarmctl looks for the local swarmd by default; swarmd's --socket default is the same. */
export const DEFAULT_SOCKET_PATH = '/run/tswarm/swarmd.sock';
