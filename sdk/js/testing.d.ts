import type { Action, Decision, Delivery, Event, Json, Level, Plugin } from "./index.js";

/** Forgets configuration, logs and counters. */
export declare function reset(): void;
/** Sets a configuration value that `host.config` returns. */
export declare function setConfig(key: string, value: string): void;
/** Log lines written so far. */
export declare function logs(): Array<{ level: Level; message: string; fields: Record<string, string> }>;
/** Counters added to so far. */
export declare function counters(): Record<string, number>;

/** One behaviour case of a `cases.json` file. */
export interface Case {
  name: string;
  hook: "produce" | "consume" | "failure";
  config?: Record<string, string>;
  events?: Array<EventSpec>;
  failure?: { event: EventSpec; attempt: number; status: number | null; error: string };
  expect: Json[];
  counters?: Record<string, number>;
}
export interface EventSpec {
  topic?: string;
  value?: Json;
  key?: string;
  headers?: Record<string, string>;
  timestamp_ms?: number;
}

/** A decision as `sluice plugin test` prints it. */
export declare function decisionJson(decision: Action | Delivery | Decision, hook: Case["hook"]): Json;
/** An event from a case's description. */
export declare function caseEvent(spec: EventSpec): Event;
/** The cases of a `cases.json` file. */
export declare function loadCases(path: string | URL): Case[];
/** Runs one case with a fresh test double. */
export declare function runCase(plugin: Plugin, testCase: Case): { decisions: Json[]; counters: Record<string, number> };
/** Asserts that `plugin` decides as the case expects and adds the counters it lists. */
export declare function checkCase(plugin: Plugin, testCase: Case): void;
