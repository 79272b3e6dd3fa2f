/**
 * What a scenario asks of one agent: its name and the VM/image it runs on. Fields a scenario leaves out come from
 * the run's `CloudConfig` (machine type, OS, binaries path, TTL, image alias), as in Tezt cloud's
 * `Agent.Configuration.make`.
 */
import { Schema } from "effect"

export const Os = Schema.Literals(["cos", "debian"])
export type Os = typeof Os.Type

/** The image an agent runs: a Dockerfile alias of ours, or an Octez release (binaries in `/usr/local/bin`). */
export const DockerImage = Schema.Union([
  Schema.TaggedStruct("Alias", { alias: Schema.String }),
  Schema.TaggedStruct("OctezRelease", { tag: Schema.String })
])
export type DockerImage = typeof DockerImage.Type

export class AgentConfig extends Schema.Class<AgentConfig>("@tezt-cloud/core/AgentConfig")({
  name: Schema.String,
  machineType: Schema.String,
  os: Os,
  binariesPath: Schema.String,
  maxRunDuration: Schema.optionalKey(Schema.Number),
  diskType: Schema.optionalKey(Schema.String),
  diskSizeGb: Schema.optionalKey(Schema.Number),
  dockerImage: DockerImage,
  dockerBuildArgs: Schema.Record(Schema.String, Schema.String)
}) {}

/** What a scenario may set; everything else comes from the run's defaults. */
export interface AgentRequest {
  readonly name?: string | undefined
  readonly machineType?: string | undefined
  readonly os?: Os | undefined
  readonly binariesPath?: string | undefined
  readonly maxRunDuration?: number | undefined
  readonly diskType?: string | undefined
  readonly diskSizeGb?: number | undefined
  readonly dockerImage?: DockerImage | undefined
  readonly dockerBuildArgs?: Record<string, string> | undefined
}

/** The run-wide defaults an `AgentRequest` is completed with. */
export interface AgentDefaults {
  readonly machineType: string
  readonly os: Os
  readonly binariesPath: string
  readonly maxRunDuration: number | undefined
  readonly diskType: string | undefined
  readonly diskSizeGb: number | undefined
  readonly dockerfileAlias: string
}

/**
 * Completes requests in order. Unnamed agents are called `agent-000`, `agent-001`, … by their position, so the
 * names are stable across runs. An Octez release image forces the binaries path to `/usr/local/bin`.
 */
export const complete = (requests: ReadonlyArray<AgentRequest>, defaults: AgentDefaults): Array<AgentConfig> =>
  requests.map((request, i) => {
    const dockerImage = request.dockerImage ?? { _tag: "Alias", alias: defaults.dockerfileAlias }
    const maxRunDuration = request.maxRunDuration ?? defaults.maxRunDuration
    const diskType = request.diskType ?? defaults.diskType
    const diskSizeGb = request.diskSizeGb ?? defaults.diskSizeGb
    return new AgentConfig({
      name: request.name ?? `agent-${String(i).padStart(3, "0")}`,
      machineType: request.machineType ?? defaults.machineType,
      os: request.os ?? defaults.os,
      binariesPath: dockerImage._tag === "OctezRelease"
        ? "/usr/local/bin"
        : request.binariesPath ?? defaults.binariesPath,
      ...(maxRunDuration === undefined ? {} : { maxRunDuration }),
      ...(diskType === undefined ? {} : { diskType }),
      ...(diskSizeGb === undefined ? {} : { diskSizeGb }),
      dockerImage,
      dockerBuildArgs: request.dockerBuildArgs ?? {}
    })
  })
