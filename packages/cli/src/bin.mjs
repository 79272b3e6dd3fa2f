#!/usr/bin/env node
// @ts-check
/**
 * The `tezt-cloud` executable. `agents exec` on a live run goes straight to the run's control socket
 * (`AgentsExecClient.cjs`, a few milliseconds of loading); everything else, and `agents exec` when no run answers
 * there, loads the full CLI (`CliBuild.runCli`): the bundle built from the sources when it is fresh, else the
 * sources (`Main.ts`), with Node's compile cache on. This file is JavaScript so that the fast path never loads
 * Node's TypeScript stripper (~0.1 s); the fast path is loaded first, and the full CLI's loader only when needed.
 */
import { createRequire } from "node:module"

// `require`, not `import`: an ES module importing a CommonJS one first loads Node's lexer of CommonJS exports
// (WebAssembly, ~25 ms of CPU).
/** @type {typeof import("./AgentsExecClient.cjs")} */
const AgentsExecClient = createRequire(import.meta.url)("./AgentsExecClient.cjs")
const code = await AgentsExecClient.run(process.argv.slice(2), process.env)
if (code === undefined) await (await import("./CliBuild.mjs")).runCli(process.env)
else process.exitCode = code
