#!/usr/bin/env node
// @ts-check
/**
 * The `tezt-cloud` executable. `agents exec` on a live run goes straight to the run's control socket
 * (`AgentsExecClient.mjs`, a few milliseconds of loading); everything else, and `agents exec` when no run answers
 * there, loads the full CLI: the bundle built from the sources when it is fresh (`CliBuild.mjs`), else the
 * sources (`Main.ts`). This file is JavaScript so that the fast path never loads Node's TypeScript stripper
 * (~0.1 s).
 */
import * as CliBuild from "./CliBuild.mjs"

// Before anything else is loaded: every module after this one is compiled once, then read from the cache.
CliBuild.enableCompileCache()
const AgentsExecClient = await import("./AgentsExecClient.mjs")
const code = await AgentsExecClient.run(process.argv.slice(2), process.env)
if (code === undefined) await import(CliBuild.main(process.env))
else process.exitCode = code
