// Sessions: the RFC 4271 §8 state machine and what two OPENs negotiate.
export { SessionFsm, TABLE, STATES, TIMERS, EVENT_TYPES, OPEN_HOLD_MS, MIN_SEND_HOLD_MS, fsmSubcode, notificationOf } from './fsm.js';
export type { State, TimerName, FsmEvent, FsmEventType, FsmAction, FsmConfig, Clock } from './fsm.js';
export { negotiate, buildCapabilities, validateOpen, openAs, announcedFamilies, collisionWinner, COLLISION_CEASE, myAsField } from './negotiate.js';
export type { CapabilityOptions, NegotiatedSession, PeerGracefulRestart, OpenExpectations, Initiator } from './negotiate.js';
