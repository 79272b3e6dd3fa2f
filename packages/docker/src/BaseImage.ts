/**
 * The base image agents' Dockerfiles start `FROM` when no registry can provide one: a Debian root file system
 * made by `debootstrap --variant=minbase` with sshd and the tools the runner needs (`setsid`, `/proc` tools,
 * `ip`/`tc`), then `docker import`ed.
 *
 * **Details**
 *
 * - The mirror is the one apt uses (`/etc/apt/sources.list.d/debian.sources`, else `/etc/apt/sources.list`);
 *   no host is hard-coded.
 * - The tarball is cached under `<cache>/base-images/` (`$TEZT_CLOUD_CACHE_DIR`, else `~/.cache/tezt-cloud`):
 *   the second `ensure` on a fresh engine imports it in seconds; on an engine that has the image, it does
 *   nothing.
 * - The image is labelled with its package list (`packagesLabel`), and the tarball's name carries a hash of it: an
 *   image or tarball made with another list (an older one, without libfaketime) is made again, not reused.
 * - debootstrap needs root.
 */
import { CloudError } from "@tezt-cloud/core"
import { Effect } from "effect"
import * as child from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { DockerClient } from "./DockerClient.ts"
import { childEnv } from "./internal/childEnv.ts"

/** The reference `debian.Dockerfile` starts from (its `BASE_IMAGE` build arg). */
export const reference = "tezt-cloud-base:bookworm"

/**
 * Packages on top of minbase: sshd, and what the runner, monitoring (the process exporter of
 * `--process-monitoring`, on by default where Prometheus runs, as on a GCP VM) and clock skew (`--faketime`) use
 * on an agent.
 */
export const packages: ReadonlyArray<string> = [
  "openssh-server",
  "iproute2",
  "procps",
  "util-linux",
  "libfaketime",
  "prometheus-process-exporter"
]

/** The label that holds the package list an image was made with. */
export const packagesLabel = "tezt-cloud.base-packages"

/** The cache directory of tarballs. */
export const cacheDir = (env: Record<string, string | undefined> = process.env) =>
  path.join(env.TEZT_CLOUD_CACHE_DIR ?? path.join(os.homedir(), ".cache", "tezt-cloud"), "base-images")

/** The Debian mirror apt uses, read from its deb822 or one-line sources. */
export const mirror = (etc = "/etc/apt"): string | undefined => {
  const deb822 = path.join(etc, "sources.list.d", "debian.sources")
  if (fs.existsSync(deb822)) {
    for (const stanza of fs.readFileSync(deb822, "utf8").split(/\n\s*\n/)) {
      const uri = /^URIs:\s*(\S+)/m.exec(stanza)?.[1]
      const suites = /^Suites:\s*(.+)$/m.exec(stanza)?.[1] ?? ""
      if (uri !== undefined && !/-security\b/.test(suites)) return uri
    }
  }
  const list = path.join(etc, "sources.list")
  if (fs.existsSync(list)) {
    const line = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+\S+/m.exec(fs.readFileSync(list, "utf8"))
    if (line?.[1] !== undefined) return line[1]
  }
  return undefined
}

/** Runs a program to completion, killing it if interrupted; its stderr tail is the error. */
const exec = (file: string, args: ReadonlyArray<string>) =>
  Effect.callback<void, CloudError.CloudError>((resume) => {
    const p = child.spawn(file, [...args], {
      // debootstrap fetches through the user's proxy, if any.
      env: childEnv(/^(?:https?|ftp|no|all)_proxy$/i),
      stdio: ["ignore", "ignore", "pipe"]
    })
    let stderr = ""
    p.stderr.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString("utf8")).slice(-4000)
    })
    p.once("error", (e) => resume(Effect.fail(CloudError.deploy("base image", `${file}: ${e.message}`, { cause: e }))))
    p.once("close", (code) =>
      resume(
        code === 0
          ? Effect.void
          : Effect.fail(CloudError.deploy("base image", `${file} exited with ${code}: ${stderr.trim()}`))
      ))
    return Effect.sync(() => p.kill("SIGKILL"))
  })

export interface EnsureOptions {
  readonly reference?: string | undefined
  readonly suite?: string | undefined
  readonly cacheDir?: string | undefined
  /** Builds again even when the engine or the cache has it. */
  readonly rebuild?: boolean | undefined
}

/**
 * Makes sure the engine has the base image: nothing to do when it has it, an import when the tarball is cached,
 * else debootstrap + tar + import. Returns what it did.
 */
export const ensure = Effect.fn("BaseImage.ensure")(function*(options: EnsureOptions = {}) {
  const docker = yield* DockerClient
  const ref = options.reference ?? reference
  const suite = options.suite ?? "bookworm"
  const dir = options.cacheDir ?? cacheDir()
  const toDeploy = (e: { readonly message: string }) => CloudError.deploy("base image", e.message, { cause: e })
  const content = packages.join(",")
  const labels = yield* docker.imageLabels(ref).pipe(Effect.mapError(toDeploy))
  if (!options.rebuild && labels?.[packagesLabel] === content) return "present" as const
  const hash = crypto.createHash("sha256").update(`${suite}\n${content}`).digest("hex").slice(0, 12)
  const tarball = path.join(dir, `${ref.replace(/[^A-Za-z0-9._-]/g, "_")}-${hash}.tar`)
  let built = false
  if (options.rebuild || !fs.existsSync(tarball)) {
    const uri = mirror()
    if (uri === undefined) {
      return yield* CloudError.deploy("base image", "no Debian mirror in /etc/apt's sources: cannot debootstrap")
    }
    const rootfs = `${tarball}.rootfs`
    fs.mkdirSync(dir, { recursive: true })
    yield* Effect.acquireUseRelease(
      Effect.sync(() => fs.rmSync(rootfs, { recursive: true, force: true })),
      () =>
        exec("debootstrap", ["--variant=minbase", `--include=${packages.join(",")}`, suite, rootfs, uri]).pipe(
          Effect.andThen(
            // Keep the image small: apt lists and caches are not needed to run.
            Effect.sync(() => {
              for (const d of ["var/lib/apt/lists", "var/cache/apt/archives"]) {
                fs.rmSync(path.join(rootfs, d), { recursive: true, force: true })
                fs.mkdirSync(path.join(rootfs, d), { recursive: true })
              }
            })
          ),
          Effect.andThen(exec("tar", ["-C", rootfs, "-cf", `${tarball}.partial`, "."])),
          Effect.andThen(Effect.sync(() => fs.renameSync(`${tarball}.partial`, tarball)))
        ),
      () => Effect.sync(() => fs.rmSync(rootfs, { recursive: true, force: true }))
    )
    built = true
  }
  yield* docker.importImage(tarball, ref, { [packagesLabel]: content }).pipe(Effect.mapError(toDeploy))
  return built ? "built" as const : "imported" as const
})
