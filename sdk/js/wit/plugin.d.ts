import type { Event } from './interfaces/sluice-plugin-types.js';
export { Event };
import type { Action } from './interfaces/sluice-plugin-types.js';
export { Action };
import type { Delivery } from './interfaces/sluice-plugin-types.js';
export { Delivery };
import type { Failure } from './interfaces/sluice-plugin-types.js';
export { Failure };
import type { Decision } from './interfaces/sluice-plugin-types.js';
export { Decision };
import type { Info } from './interfaces/sluice-plugin-types.js';
export { Info };
import { SluicePluginHost } from './interfaces/sluice-plugin-host.js';
declare const SluicePluginTypes: {};
/**
* Describes the plugin; called once when it is loaded.
*/
export function describe(): Info;
/**
* Produce path: called with a batch of events before they are validated and encoded.
* Answers one action per event, in order.
*/
export function onProduce(events: Array<Event>): Array<Action>;
/**
* Consume path: called with a batch of events before they are delivered to a webhook.
* Answers one decision per event, in order.
*/
export function onConsume(events: Array<Event>): Array<Delivery>;
/**
* Called when delivering an event failed. Answers what to do next.
*/
export function onFailure(failure: Failure): Decision;
