#!/usr/bin/env node
// @ts-check
/**
 * The `tezt-cloud` executable. `agents exec` on a live run goes straight to the run's control socket
 * (`AgentsExecClient.mjs`, a few milliseconds of loading); everything else, and `agents exec` when no run answers
 * there, loads the full CLI (`Main.ts`, about a second). This file is JavaScript so that the fast path never
 * loads Node's TypeScript stripper (~0.1 s).
 */
import * as AgentsExecClient from "./AgentsExecClient.mjs"

const code = await AgentsExecClient.run(process.argv.slice(2), process.env)
if (code === undefined) await import("./Main.ts")
else process.exitCode = code
