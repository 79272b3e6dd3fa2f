// A tiny HTTP server for the PingPong example: answers "pong" on the port given as its first argument.
import { createServer } from "node:http"

createServer((_, response) => response.end("pong\n")).listen(Number(process.argv[2]), "0.0.0.0")
