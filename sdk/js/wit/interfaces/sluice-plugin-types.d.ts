declare module 'sluice:plugin/types@0.1.0' {
}
/**
 * A Kafka record header.
 */
export interface Header {
  key: string,
  value: Uint8Array,
}
/**
 * An event on its way into Kafka (produce path) or out of it (consume path).
 */
export interface Event {
  /**
   * The topic the event is headed to, or came from.
   */
  topic: string,
  /**
   * The record key, if any.
   */
  key?: Uint8Array,
  /**
   * The event as UTF-8 JSON text.
   */
  value: Uint8Array,
  /**
   * Record headers.
   */
  headers: Array<Header>,
  /**
   * Milliseconds since the Unix epoch: when Sluice received the event (produce) or the
   * record's timestamp (consume).
   */
  timestampMs: bigint,
}
/**
 * Changes to an event; fields left `none` stay as they were.
 */
export interface Changes {
  /**
   * A new value, as UTF-8 JSON text.
   */
  value?: Uint8Array,
  /**
   * A new key.
   */
  key?: Uint8Array,
  /**
   * New headers, replacing all of them.
   */
  headers?: Array<Header>,
}
/**
 * Where a rerouted event goes.
 */
export interface RerouteTo {
  /**
   * Another topic routed by the same gateway; the event is checked against its schema.
   */
  topic: string,
  /**
   * Changes to apply on the way.
   */
  changes?: Changes,
}
/**
 * The decision for one event on the produce path.
 */
export type Action = ActionAccept | ActionModify | ActionDrop | ActionReject | ActionDeadLetter | ActionReroute | ActionFanOut;
/**
 * Keep the event as it is.
 */
export interface ActionAccept {
  tag: 'accept',
}
/**
 * Keep the event, changed.
 */
export interface ActionModify {
  tag: 'modify',
  val: Changes,
}
/**
 * Leave the event out, successfully; the reason is reported to the HTTP caller.
 */
export interface ActionDrop {
  tag: 'drop',
  val: string,
}
/**
 * Refuse the event; the HTTP caller gets a 422 naming the plugin and this reason.
 */
export interface ActionReject {
  tag: 'reject',
  val: string,
}
/**
 * Send the event to the route's dead letter topic with this reason.
 */
export interface ActionDeadLetter {
  tag: 'dead-letter',
  val: string,
}
/**
 * Send the event to another topic instead.
 */
export interface ActionReroute {
  tag: 'reroute',
  val: RerouteTo,
}
/**
 * Replace the event with these events (their `topic` must be the route's topic or
 * another routed topic).
 */
export interface ActionFanOut {
  tag: 'fan-out',
  val: Array<Event>,
}
/**
 * The decision for one event about to be delivered to a webhook subscriber.
 */
export type Delivery = DeliveryDeliver | DeliveryModify | DeliverySkip | DeliveryDeadLetter;
/**
 * Deliver the event as it is.
 */
export interface DeliveryDeliver {
  tag: 'deliver',
}
/**
 * Deliver the event, changed.
 */
export interface DeliveryModify {
  tag: 'modify',
  val: Changes,
}
/**
 * Do not deliver it; count it as handled.
 */
export interface DeliverySkip {
  tag: 'skip',
  val: string,
}
/**
 * Send it to the subscription's dead letter topic with this reason.
 */
export interface DeliveryDeadLetter {
  tag: 'dead-letter',
  val: string,
}
/**
 * A failed webhook delivery.
 */
export interface Failure {
  /**
   * The event that could not be delivered.
   */
  event: Event,
  /**
   * Attempts made so far (1 after the first failure).
   */
  attempt: number,
  /**
   * The subscriber's HTTP status, if it answered.
   */
  status?: number,
  /**
   * What went wrong.
   */
  error: string,
}
/**
 * What to do after a failed delivery.
 */
export type Decision = DecisionRetryAfter | DecisionDeadLetter | DecisionDrop;
/**
 * Try again after this many milliseconds.
 */
export interface DecisionRetryAfter {
  tag: 'retry-after',
  val: number,
}
/**
 * Send the event to the dead letter topic with this reason.
 */
export interface DecisionDeadLetter {
  tag: 'dead-letter',
  val: string,
}
/**
 * Give up on the event, counting it as handled.
 */
export interface DecisionDrop {
  tag: 'drop',
  val: string,
}
/**
 * The hooks a plugin implements; Sluice calls only these.
 */
export interface Hooks {
  produce?: boolean,
  consume?: boolean,
  failure?: boolean,
}
/**
 * What a plugin says about itself.
 */
export interface Info {
  /**
   * The plugin's own name for itself (for logs).
   */
  name: string,
  /**
   * The plugin's own version string (for logs).
   */
  version: string,
  /**
   * The hooks it implements.
   */
  hooks: Hooks,
}
/**
 * Log levels for `host.log`.
 * # Variants
 * 
 * ## `"trace"`
 * 
 * ## `"debug"`
 * 
 * ## `"info"`
 * 
 * ## `"warn"`
 * 
 * ## `"error"`
 */
export type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error';
