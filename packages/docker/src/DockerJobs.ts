/**
 * The `CLOUD docker …` maintenance jobs this package contributes: `CLOUD docker base` (the base image from Debian
 * packages, for machines no registry serves), `CLOUD docker build`, `CLOUD docker push` (to the local registry)
 * and `CLOUD docker registry deploy`. They deploy nothing; images they make are the user's and stay.
 */
import { AgentConfig, Cloud, CloudError, Ledger, Orchestrator, Scenario } from "@tezt-cloud/core"
import { SshKeys } from "@tezt-cloud/ssh"
import { Effect } from "effect"
import * as path from "node:path"
import * as BaseImage from "./BaseImage.ts"
import * as DockerClient from "./DockerClient.ts"
import * as DockerImage from "./DockerImage.ts"
import * as DockerRegistry from "./DockerRegistry.ts"

/** The engine of `DOCKER_HOST`, or one clear error when none answers. */
const engine = Effect.gen(function*() {
  const options = DockerClient.engineOptions()
  if (!(yield* DockerClient.probe(options))) {
    return yield* CloudError.state(
      DockerClient.engineLabel(options),
      "no Docker engine answers there: start dockerd, or point DOCKER_HOST at one"
    )
  }
  return DockerClient.layer(options)
})

const withEngine = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(engine, (layer) => Effect.provide(effect, layer))

/** Builds `<alias>:latest` with the automatic build args of the namespace; returns the tag. */
const build = Effect.gen(function*() {
  const cloud = yield* Cloud.Cloud
  const config = cloud.config
  const docker = yield* DockerClient.DockerClient
  const key = yield* SshKeys.ensure(cloud.namespace, config.sshPrivateKey)
  const [agent] = AgentConfig.complete([{}], Orchestrator.agentDefaults(config))
  const alias = config.dockerfileAlias
  const file = yield* DockerImage.dockerfile(alias, DockerImage.dockerfilesDir(), cloud.namespace)
  const tag = `${alias.toLowerCase()}:latest`
  yield* docker.build({
    context: path.dirname(file),
    dockerfile: path.basename(file),
    tag,
    buildArgs: DockerImage.buildArgs(agent!, key.publicKey),
    labels: {}
  }).pipe(Effect.mapError((e) => CloudError.deploy(`image ${alias}`, e.message, { cause: e })))
  yield* Effect.logInfo(`built ${tag} from ${path.relative(process.cwd(), file)}`)
  return tag
})

export const base = Scenario.make({
  title: "Make the agents' base image from Debian packages (debootstrap, docker import)",
  tags: ["docker", "base"],
  run: withEngine(Effect.gen(function*() {
    const done = yield* BaseImage.ensure()
    yield* Effect.logInfo(
      done === "present"
        ? `${BaseImage.reference} is already there`
        : `${BaseImage.reference} ${
          done === "built" ? "built with debootstrap and imported" : "imported from the cache"
        }`
    )
  }))
})

export const buildImage = Scenario.make({
  title: "Build the dockerfile",
  tags: ["docker", "build"],
  run: withEngine(Effect.asVoid(build))
})

export const push = Scenario.make({
  title: "Push the image to the local registry ($TEZT_CLOUD_DOCKER_REGISTRY, default 127.0.0.1:5000)",
  tags: ["docker", "push"],
  run: withEngine(Effect.gen(function*() {
    const docker = yield* DockerClient.DockerClient
    const tag = yield* build
    const target = `${DockerRegistry.address()}/${tag}`
    const fail = (e: { readonly message: string }) => CloudError.deploy("registry", e.message, { cause: e })
    yield* docker.tag(tag, target).pipe(Effect.mapError(fail))
    yield* docker.push(target).pipe(Effect.mapError(fail))
    yield* Effect.logInfo(`pushed ${target}`)
  }))
})

export const registryDeploy = (stateDir: string) =>
  Scenario.make({
    title: "Deploy docker registry",
    tags: ["docker", "registry", "deploy"],
    run: withEngine(Effect.gen(function*() {
      const cloud = yield* Cloud.Cloud
      const where = yield* DockerRegistry.deploy({
        namespace: cloud.namespace,
        dir: path.join(Ledger.namespaceDir(stateDir, cloud.namespace), "registry")
      })
      yield* Effect.logInfo(`registry ${DockerRegistry.containerName(cloud.namespace)} listens on ${where}`)
    }))
  })

/** Every job, in the order `CLOUD --list` shows them. */
export const all = (stateDir: string): ReadonlyArray<Scenario.Scenario> => [
  base,
  buildImage,
  push,
  registryDeploy(stateDir)
]
