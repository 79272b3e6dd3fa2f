#!/usr/bin/env node
/**
 * The proxy server's executable: `node serve.ts DIR` serves the namespace directory DIR of the proxy (see
 * `ProxyServer`). Started detached (`setsid`) by the local CLI over ssh; it runs until asked to stop.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Effect, Runtime } from "effect"
import * as ProxyServer from "./ProxyServer.ts"

const dir = process.argv[2]
if (dir === undefined) {
  process.stderr.write("usage: serve.ts DIR\n")
  process.exit(2)
}
// What it creates (its socket, the log) is its user's only, from the start: no moment of a wider mode.
process.umask(0o077)
// Detached from every terminal: a hang-up is not addressed to it.
process.on("SIGHUP", () => {})
// It exits once stopped, whatever connections are still open.
NodeRuntime.runMain(Effect.scoped(ProxyServer.main(dir)), {
  teardown: (exit, onExit) =>
    Runtime.defaultTeardown(exit, (code) => {
      onExit(code)
      process.exit(code)
    })
})
