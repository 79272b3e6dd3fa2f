#!/usr/bin/env node
/** The `gcp-emulator` executable (`npm run gcp-emulator -- --help`). */
import { main } from "./Main.ts"

main(process.argv.slice(2))
