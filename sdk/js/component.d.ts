import type { Plugin } from "./index.js";
import type * as world from "./wit/plugin.js";

/** The plugin world's exports for `plugin`, host calls going to the imported host interface. */
export declare function component(
  plugin: Plugin,
  witHost: unknown,
): {
  describe: typeof world.describe;
  onProduce: typeof world.onProduce;
  onConsume: typeof world.onConsume;
  onFailure: typeof world.onFailure;
};
