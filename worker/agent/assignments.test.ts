// Applying assignment messages to what the agent holds in memory: registry credentials by service,
// set, replaced and withdrawn; a complete set replaces everything held.
import { describe, expect, it } from 'vitest';
import { AssignmentChange_Action, AssignmentsMessage_Type, type AssignmentChange, type AssignmentsMessage } from '../../proto/gen/tswarm/dispatcher.js';
import { Secret } from '../../proto/gen/tswarm/objects.js';
import type { RegistryAuth } from '../../proto/gen/tswarm/types.js';
import { applyAssignments, noAssignedData, type AssignedData } from './assignments.js';

const alice: RegistryAuth = { serverAddress: '10.0.0.1:5000', username: 'alice', password: 'wonderland', identityToken: '' };
const cred = (serviceId: string, auth: RegistryAuth | undefined, action = AssignmentChange_Action.ACTION_UPDATE): AssignmentChange => ({ action, assignment: { item: { $case: 'registryCredential', registryCredential: { serviceId, auth } } } });
const msg = (type: AssignmentsMessage_Type, changes: AssignmentChange[]): AssignmentsMessage => ({ type, appliesTo: '', resultsIn: 'x', changes, sequence: 1 });

describe('applyAssignments', () => {
  it('keeps registry credentials by service: set, replaced, withdrawn', () => {
    const data: AssignedData = noAssignedData();
    applyAssignments(msg(AssignmentsMessage_Type.TYPE_INCREMENTAL, [cred('s1', alice)]), [], data);
    expect(data.registryCredentials.get('s1')).toEqual(alice);
    applyAssignments(msg(AssignmentsMessage_Type.TYPE_INCREMENTAL, [cred('s1', { ...alice, username: 'bob' })]), [], data);
    expect(data.registryCredentials.get('s1')?.username).toBe('bob');
    applyAssignments(msg(AssignmentsMessage_Type.TYPE_INCREMENTAL, [cred('s1', undefined, AssignmentChange_Action.ACTION_REMOVE)]), [], data);
    expect(data.registryCredentials.size).toBe(0);
  });

  it('replaces what it holds with a complete set (what was withdrawn while no session was up goes)', () => {
    const data: AssignedData = { ...noAssignedData(), secrets: new Map([['old', Buffer.from('x')]]), registryCredentials: new Map([['gone', alice]]) };
    const secret: AssignmentChange = { action: AssignmentChange_Action.ACTION_UPDATE, assignment: { item: { $case: 'secret', secret: Secret.fromPartial({ id: 'new', spec: { data: Buffer.from('y') } }) } } };
    applyAssignments(msg(AssignmentsMessage_Type.TYPE_COMPLETE, [secret, cred('s2', alice)]), [], data);
    expect([...data.secrets.keys()]).toEqual(['new']);
    expect([...data.registryCredentials.keys()]).toEqual(['s2']);
  });
});
