declare module 'sluice:plugin/host@0.1.0' {
  /**
   * Writes a structured log line, tagged with the plugin's name and version.
   */
  export function log(level: Level, message: string, fields: Array<[string, string]>): void;
  /**
   * Adds to a counter, exported as a metric labelled with the plugin and this name.
   */
  export function counterAdd(name: string, delta: bigint): void;
  /**
   * A value from the plugin's configuration (`[plugins.config]` in Sluice's config file).
   */
  export function configGet(key: string): string | undefined;
}
import type { Level } from './sluice-plugin-types.js';
export { Level };
