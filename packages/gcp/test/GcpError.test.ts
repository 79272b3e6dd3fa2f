/**
 * Failures the emulator does not produce (it knows no disabled API, no missing project, no full zone, no missing
 * image), each as Compute answers it, byte for byte, from a local HTTP server, through the official client and
 * `GceClient`: each becomes its one-line reason naming the fix. (The quota error comes from the emulator itself,
 * in GcpCli.test.ts.)
 */
import { assert, describe, it } from "@effect/vitest"
import { GceClient, GceResources, GcpError } from "@tezt-cloud/gcp"
import { Effect } from "effect"
import * as http from "node:http"

/** Compute's error body for a disabled API (its `ErrorInfo` says SERVICE_DISABLED). */
const serviceDisabled = (project: string) => ({
  error: {
    code: 403,
    message: `Compute Engine API has not been used in project ${project} before or it is disabled. Enable it by ` +
      `visiting https://console.developers.google.com/apis/api/compute.googleapis.com/overview?project=${project} ` +
      `then retry.`,
    errors: [{ message: "Access Not Configured.", domain: "usageLimits", reason: "accessNotConfigured" }],
    status: "PERMISSION_DENIED",
    details: [{
      "@type": "type.googleapis.com/google.rpc.ErrorInfo",
      reason: "SERVICE_DISABLED",
      domain: "googleapis.com",
      metadata: { service: "compute.googleapis.com", consumer: `projects/${project}` }
    }]
  }
})

const notFound = (resource: string) => ({
  error: {
    code: 404,
    message: `The resource '${resource}' was not found`,
    errors: [{ message: `The resource '${resource}' was not found`, domain: "global", reason: "notFound" }]
  }
})

/** An insert's Operation that ended with an error, as Compute reports a full zone. */
const exhausted = (project: string) => ({
  kind: "compute#operation",
  id: "1",
  name: "operation-1",
  operationType: "insert",
  status: "DONE",
  progress: 100,
  error: {
    errors: [{
      code: "ZONE_RESOURCE_POOL_EXHAUSTED",
      message: `The zone 'projects/${project}/zones/europe-west1-b' does not have enough resources available to ` +
        `fulfill the request.  Try a different zone, or try again later.`
    }]
  }
})

/** Answers by project: `disabled`, `missing`, `full` (inserts) and `noimage` (inserts). */
const answer = (url: string): readonly [number, unknown] => {
  const project = /\/projects\/([^/]+)\//.exec(url)?.[1] ?? ""
  if (project === "disabled") return [403, serviceDisabled(project)]
  if (project === "missing") return [404, notFound(`projects/${project}`)]
  if (project === "full") return [200, exhausted(project)]
  if (project === "noimage") return [404, notFound("projects/debian-cloud/global/images/family/debian-99")]
  return [500, { error: { code: 500, message: "unexpected" } }]
}

const server = Effect.acquireRelease(
  Effect.callback<http.Server>((resume) => {
    const s = http.createServer((req, res) => {
      const [status, body] = answer(req.url ?? "")
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body))
    })
    s.listen(0, "127.0.0.1", () => resume(Effect.succeed(s)))
  }),
  (s) => Effect.callback<void>((resume) => void s.close(() => resume(Effect.void)))
)

/** The reason `f` fails with, against the server, in `project`. */
const reasonOf = (project: string, f: (gce: GceClient.Api) => Effect.Effect<unknown, GcpError.GcpError>) =>
  Effect.gen(function*() {
    const s = yield* server
    const port = (s.address() as { port: number }).port
    const gce = yield* GceClient.make({
      endpoint: `http://127.0.0.1:${port}`,
      project,
      zone: "europe-west1-b",
      region: "europe-west1",
      image: undefined
    })
    const error = yield* Effect.flip(f(gce))
    assert.notInclude(error.message, "\n")
    return error.reason
  }).pipe(Effect.scoped)

const vm = GceResources.instance({
  namespace: "x",
  agent: "a",
  zone: "europe-west1-b",
  machineType: "e2-small",
  image: "projects/debian-cloud/global/images/family/debian-99",
  diskType: "pd-ssd",
  diskSizeGb: 10,
  maxRunDuration: undefined,
  sshPort: 30000,
  publicKey: "ssh-ed25519 AAAA x",
  ports: { start: 30000, end: 30049 },
  monitoring: false,
  packages: []
})

describe("GcpError: Compute's failures through the official client", () => {
  it.live("a disabled Compute API names the gcloud command that enables it", () =>
    Effect.gen(function*() {
      const reason = yield* reasonOf("disabled", (gce) => gce.instances(""))
      assert.strictEqual(reason._tag, "ApiDisabled")
      assert.include(GcpError.describe(reason), "gcloud services enable compute.googleapis.com --project disabled")
    }))

  it.live("an unknown project names --project-id", () =>
    Effect.gen(function*() {
      const reason = yield* reasonOf("missing", (gce) => gce.instances(""))
      assert.strictEqual(reason._tag, "UnknownProject")
      const cloud = GcpError.toCloud("gcp")(GcpError.make(reason))
      assert.match(cloud.message, /^--project-id: project missing does not exist/)
    }))

  it.live("a zone out of capacity (the insert's Operation error) names TEZT_CLOUD_GCP_ZONE", () =>
    Effect.gen(function*() {
      const reason = yield* reasonOf("full", (gce) => gce.insertInstance(vm, "image"))
      assert.strictEqual(reason._tag, "ZoneCapacity")
      assert.include(GcpError.describe(reason), "TEZT_CLOUD_GCP_ZONE")
    }))

  it.live("a missing image names --os and TEZT_CLOUD_GCP_IMAGE", () =>
    Effect.gen(function*() {
      const image = "projects/debian-cloud/global/images/family/debian-99"
      const reason = yield* reasonOf("noimage", (gce) => gce.insertInstance(vm, image))
      assert.strictEqual(reason._tag, "ImageNotFound")
      assert.include(GcpError.describe(reason), `image ${image} not found`)
    }))
})
