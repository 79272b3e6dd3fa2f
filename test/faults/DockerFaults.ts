/**
 * What the fault files whose runs use the test Docker engine (`docker.test.ts`, `proxy.test.ts`) share: an effect
 * run on that engine, the environment of a run on it, and the removal of what leaked runs left there once reported
 * (later suites must not meet it).
 */
import { DockerAgents, DockerClient } from "@tezt-cloud/docker"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { root } from "../fixtures/Cli.ts"
import * as DockerEngine from "../fixtures/DockerEngine.ts"
import * as FaultSuite from "./FaultSuite.ts"

/** Runs `effect` with a client of the test engine. */
export const onEngine = <A, E>(effect: Effect.Effect<A, E, DockerClient.DockerClient>) =>
  Effect.runPromise(effect.pipe(Effect.provide(DockerClient.layer({ socketPath: DockerEngine.socket }))))

/** The environment of a run on the test engine, its images built from the repository's Dockerfiles. */
export const env = {
  ...FaultSuite.common,
  DOCKER_HOST: DockerEngine.host,
  TEZT_CLOUD_DOCKERFILES: path.join(root, "dockerfiles")
}

/** Removes the containers, networks and images that the namespaces' runs left on the engine. */
export const removeLeftovers = (namespaces: ReadonlyArray<string>) =>
  onEngine(Effect.forEach(namespaces, (namespace) =>
    Effect.gen(function*() {
      const engine = yield* DockerClient.DockerClient
      const left = yield* DockerAgents.leftovers(namespace)
      yield* Effect.forEach(left.containers, (c) => engine.remove(c))
      yield* Effect.forEach(left.networks, (n) => engine.removeNetwork(n, { [DockerClient.namespaceLabel]: namespace }))
      yield* Effect.forEach(left.images, (i) => engine.removeImage(i))
    }).pipe(Effect.ignore)))

/** The file's end: its table, what its leaked runs left on the engine removed, its ssh key's home removed. */
export const end = async (suite: ReturnType<typeof FaultSuite.make>, keyHome: string) => {
  suite.report()
  await removeLeftovers(suite.outcomes.filter((o) => o.leaked).map((o) => o.namespace))
  fs.rmSync(keyHome, { recursive: true, force: true })
}
