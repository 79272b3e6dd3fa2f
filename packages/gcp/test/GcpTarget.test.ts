/**
 * Where the GCP backend works, decided from files and the environment only: the project's sources in order, the
 * zone, credentials given whole to a run on a proxy, and one-line refusals (no credentials, no project, a bad zone or endpoint) before anything is loaded.
 */
import { assert, describe, it } from "@effect/vitest"
import { GcpTarget } from "@tezt-cloud/gcp"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const emulator = { TEZT_CLOUD_GCP_ENDPOINT: "http://127.0.0.1:8086" }

/** A home with gcloud's configuration files (`configurations/config_<name>`, ADC), as gcloud writes them. */
const gcloudHome = (files: Record<string, string>) => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "gcp-target-"))
  for (const [file, text] of Object.entries(files)) {
    const full = path.join(home, ".config", "gcloud", file)
    fs.mkdirSync(path.dirname(full), { recursive: true })
    fs.writeFileSync(full, text)
  }
  return home
}

const reasonOf = (projectId: string | undefined, env: Record<string, string>) =>
  Effect.flip(GcpTarget.resolve(projectId, env)).pipe(Effect.map((e) => e.reason))

describe("GcpTarget", () => {
  it.effect("an emulator needs no credentials; --project-id, then the environment, then gcloud's project", () =>
    Effect.gen(function*() {
      const home = gcloudHome({
        active_config: "work\n",
        "configurations/config_work":
          "[compute]\nzone = us-east1-c\n[core]\naccount = me@example.com\nproject = from-gcloud\n"
      })
      const env = { ...emulator, HOME: home }
      const given = yield* GcpTarget.resolve("given", { ...env, GOOGLE_CLOUD_PROJECT: "from-env" })
      assert.deepStrictEqual(given, {
        endpoint: "http://127.0.0.1:8086",
        project: "given",
        zone: "europe-west1-b",
        region: "europe-west1",
        image: undefined
      })
      assert.strictEqual(
        (yield* GcpTarget.resolve(undefined, { ...env, GOOGLE_CLOUD_PROJECT: "from-env" })).project,
        "from-env"
      )
      assert.strictEqual((yield* GcpTarget.resolve(undefined, env)).project, "from-gcloud")
      const zoned = yield* GcpTarget.resolve("p", { ...env, TEZT_CLOUD_GCP_ZONE: "us-central1-f" })
      assert.strictEqual(zoned.region, "us-central1")
    }))

  it.effect("Google's API: credentials from the ADC file (and its project); none is one line with the fix", () =>
    Effect.gen(function*() {
      const withAdc = gcloudHome({
        "application_default_credentials.json": JSON.stringify({ type: "authorized_user", quota_project_id: "adc-p" })
      })
      const target = yield* GcpTarget.resolve(undefined, { HOME: withAdc })
      assert.strictEqual(target.endpoint, undefined)
      assert.strictEqual(target.project, "adc-p")
      // A run on a proxy: the user's credentials file whole, from its 0600 secrets file.
      const file = { type: "authorized_user", quota_project_id: "shipped-p" }
      const shipped = yield* GcpTarget.resolve(undefined, {
        HOME: gcloudHome({}),
        [GcpTarget.credentialsVariable]: JSON.stringify(file)
      })
      assert.strictEqual(shipped.project, "shipped-p")
      assert.deepStrictEqual(shipped.credentials, file)
      const garbled = yield* reasonOf("p", { HOME: gcloudHome({}), [GcpTarget.credentialsVariable]: "{" })
      assert.strictEqual(garbled._tag === "BadSetting" ? garbled.setting : "", "$TEZT_CLOUD_GCP_CREDENTIALS")
      // On a GCE VM the metadata server gives credentials: there is no "none" to see.
      if (GcpTarget.onGce()) return
      const none = yield* reasonOf("p", { HOME: gcloudHome({}) })
      assert.strictEqual(none._tag, "NoCredentials")
      const missingFile = yield* reasonOf("p", { HOME: withAdc, GOOGLE_APPLICATION_CREDENTIALS: "/nonexistent.json" })
      assert.strictEqual(missingFile._tag, "NoCredentials")
    }))

  it.effect("no project anywhere, a bad zone, a bad endpoint: each refused, naming what to set", () =>
    Effect.gen(function*() {
      const home = gcloudHome({})
      assert.strictEqual((yield* reasonOf(undefined, { ...emulator, HOME: home }))._tag, "NoProject")
      const zone = yield* reasonOf("p", { ...emulator, HOME: home, TEZT_CLOUD_GCP_ZONE: "europe" })
      assert.strictEqual(zone._tag === "BadSetting" ? zone.setting : "", "$TEZT_CLOUD_GCP_ZONE")
      const endpoint = yield* reasonOf("p", { HOME: home, TEZT_CLOUD_GCP_ENDPOINT: "127.0.0.1:8086" })
      assert.strictEqual(endpoint._tag === "BadSetting" ? endpoint.setting : "", "$TEZT_CLOUD_GCP_ENDPOINT")
      const project = yield* reasonOf("My_Project", { ...emulator, HOME: home })
      assert.strictEqual(project._tag === "BadSetting" ? project.setting : "", "--project-id")
    }))
})
