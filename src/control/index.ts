// The control socket: skeind's server, skeinctl's client, and the protocol between them.
export { ControlServer, probeSocket } from './server.js';
export type { ControlHandler, ControlServerOptions } from './server.js';
export { callControl, ControlClientError } from './client.js';
export type { ControlClientErrorKind } from './client.js';
export { resolveGroup, parseGroupFile } from './group.js';
export { ControlError, DEFAULT_CONTROL_SOCKET, DEFAULT_MAX_REQUEST_BYTES } from './protocol.js';
export type { ControlErrorBody, ControlRequest, ControlResponse, RequestId } from './protocol.js';
