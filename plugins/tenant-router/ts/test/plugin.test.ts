// The behaviour cases shared with the Rust and Python versions, natively through the SDK's
// test double (`npm test`: tsc, then node's test runner).
import { test } from "node:test";
import { checkCase, loadCases } from "sluice-plugin/testing";

import plugin from "../src/plugin.js";

// Tests run in the project directory (`npm test`, `sluice plugin test`).
for (const testCase of loadCases("../cases.json")) {
  test(testCase.name, () => checkCase(plugin, testCase));
}
