/**
 * # noop (TypeScript)
 *
 * Accepts and delivers every event unchanged: the benchmark's baseline for what a TypeScript
 * plugin costs per event (the events handed to QuickJS and the decisions back).
 */

import { Action, Delivery, definePlugin } from "sluice-plugin";

export default definePlugin({
  name: "noop",
  produce: () => Action.accept(),
  consume: () => Delivery.deliver(),
});
