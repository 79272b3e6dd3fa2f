/**
 * The proxy image of `--localhost --proxy`: the agents' base image with this version's bundle already in root's
 * home, where shipping looks for it, so that a new proxy container starts with the orchestrator there and nothing
 * crosses the ssh connection but the run's own files. Made once per bundle version on the engine, then reused by
 * every run of every namespace: a cache, like the base image, not a resource of a run.
 *
 * **Details**
 *
 * - Tagged `tezt-cloud-proxy-bundle:<bundle hash>` and labelled `tezt-cloud.cache=proxy-bundle` (no namespace
 *   label): no ledger record, no leftover of a namespace, and `CLOUD clean up` leaves it, as it leaves the base
 *   image. Making one removes the older versions' tags (but the newest others, and any still in use).
 * - The proxy's container runs this image as it is, for any namespace: sshd is ready in it (its host keys made
 *   once, with the image), and its entrypoint writes root's `authorized_keys` from the container's
 *   `SSH_PUBLIC_KEY`, given at its start (`DockerAgents.keyAtStart`). Nothing is built per run, and no image is
 *   left per namespace.
 * - In the image the bundle carries a marker (`imageMarker`): it lies in a read-only layer, where hard-linking
 *   its files into a workspace would copy each of them, so the workspace links to it instead (`Shipping.run`).
 *   Each run has a container of its own: what its run writes there stays in that container.
 * - Node's compile cache of the bundle (`compileCache`) is filled when the image is made, by loading the CLI and
 *   the proxy server (the build's, `Bundle.server`) once: every container then starts both from V8's compiled code instead of compiling them
 *   again (what a run adds to the cache stays in its own container).
 * - No base image on the engine, or a build that fails: no proxy image, the bundle is shipped (a warning says why).
 */
import { CloudError } from "@tezt-cloud/core"
import { BaseImage, DockerAgents, DockerClient } from "@tezt-cloud/docker"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Bundle from "./Bundle.ts"
import * as Protocol from "./ProxyProtocol.ts"

/** The repository of proxy images; the tag is the bundle's hash. */
export const repository = "tezt-cloud-proxy-bundle"

/** The label (and its value) that makes an image a cache of tezt-cloud's, not a namespace's resource. */
export const cacheLabel = "tezt-cloud.cache"
export const cacheValue = "proxy-bundle"

/** The file of a bundle directory that says it came with the image (read-only: link to it, never hard-link). */
export const imageMarker = ".image"

/** The home of the proxy's user (root) in the image: where shipping looks for the bundle. */
export const home = "/root"

/**
 * Proxy images kept besides the newest: a development tree makes a new one at each change, and several trees
 * may share an engine.
 */
const kept = 3

export const reference = (hash: string) => `${repository}:${hash}`

/** The entrypoint script's file in the build context, and its path in the image. */
const entrypoint = "entrypoint.sh"
const entrypointPath = "/usr/local/sbin/tezt-cloud-sshd"

/**
 * The Dockerfile of a proxy image: the base, the bundle's tarball unpacked where shipping would put it, and the
 * bundle's compile cache filled by loading the CLI (`--help`) and the proxy server's module (imported, not run).
 */
export const dockerfile = (hash: string, serverModule: string = Bundle.serverEntry) => {
  const dir = Protocol.bundleDir(home, hash)
  const node = `${dir}/${Bundle.nodePath}`
  const server = `${dir}/${serverModule}`
  return [
    "ARG BASE_IMAGE",
    "FROM ${BASE_IMAGE}",
    `ADD bundle.tar.gz ${dir}/`,
    `RUN cd /tmp && export NODE_COMPILE_CACHE=${dir}/${Bundle.compileCache} && ` +
    `${node} ${dir}/${Bundle.cliEntry} --help > /dev/null && ` +
    // The server, without its directory argument, loads its modules and exits (2).
    `{ ${node} ${server} > /dev/null 2>&1 || true; }`,
    `COPY marker ${dir}/.complete`,
    `COPY marker ${dir}/${imageMarker}`,
    // A machine of its own, as the agents' image is (sshd, its host keys), but for any namespace: root's key is
    // given at the container's start (`DockerAgents.keyAtStart`).
    `COPY ${entrypoint} ${entrypointPath}`,
    `RUN chmod 755 ${entrypointPath} && mkdir -p /run/sshd && ssh-keygen -A`,
    `ENTRYPOINT ["${entrypointPath}"]`,
    `CMD ["-D", "-p", "30000", "-e"]`,
    ""
  ].join("\n")
}

/** Links `from` to `to`, or copies it when they are on different file systems. */
const linkOrCopy = (from: string, to: string) => {
  try {
    fs.linkSync(from, to)
  } catch {
    fs.copyFileSync(from, to)
  }
}

/** Removes the proxy images but `current` and the newest others; one still in use stays (the engine refuses). */
const prune = (current: string) =>
  Effect.gen(function*() {
    const docker = yield* DockerClient.DockerClient
    const others = (yield* docker.images({ [cacheLabel]: cacheValue })).filter((i) =>
      i.name !== current && i.name.startsWith(`${repository}:`)
    )
    // Listed newest first by the engine.
    yield* Effect.forEach(others.slice(kept), (i) => docker.removeImage(i.name).pipe(Effect.ignore), {
      discard: true
    })
  })

/**
 * The engine's proxy image of this version, made when missing; `undefined` when the engine cannot have one (no
 * base image): the bundle is then shipped.
 */
export const ensure = Effect.fn("ProxyImage.ensure")(function*(bundle?: Bundle.Bundle) {
  const docker = yield* DockerClient.DockerClient
  const made = bundle ?? (yield* Bundle.make())
  const ref = reference(made.hash)
  const fail = (e: { readonly message: string }) => CloudError.deploy("proxy image", e.message, { cause: e })
  const labels = yield* docker.imageLabels(ref).pipe(Effect.mapError(fail))
  if (labels?.[cacheLabel] === cacheValue) return ref
  if ((yield* docker.imageLabels(BaseImage.reference).pipe(Effect.mapError(fail))) === undefined) return undefined
  const tarball = yield* Bundle.tarball(made)
  yield* Effect.logInfo(`proxy: making the proxy image ${ref}, once for this version`)
  yield* Effect.acquireUseRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "tezt-cloud-proxy-image-"))),
    (context) =>
      Effect.gen(function*() {
        linkOrCopy(tarball, path.join(context, "bundle.tar.gz"))
        fs.writeFileSync(path.join(context, "marker"), "")
        fs.writeFileSync(path.join(context, entrypoint), DockerAgents.keyAtStart.script, { mode: 0o755 })
        fs.writeFileSync(path.join(context, "Dockerfile"), dockerfile(made.hash, made.server))
        yield* docker.build({
          context,
          dockerfile: "Dockerfile",
          tag: ref,
          buildArgs: { BASE_IMAGE: BaseImage.reference },
          labels: { [cacheLabel]: cacheValue }
        }).pipe(Effect.mapError(fail))
      }),
    (context) => Effect.sync(() => fs.rmSync(context, { recursive: true, force: true }))
  )
  yield* prune(ref).pipe(Effect.ignore)
  return ref
})
