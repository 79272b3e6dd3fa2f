#!/usr/bin/env node
/**
 * `node packages/cli/src/bin.ts`, kept for scripts that start the CLI by this path: the same as `bin.mjs`, the
 * executable, plus ~0.1 s for Node's TypeScript stripper.
 */
await import("./bin.mjs")
