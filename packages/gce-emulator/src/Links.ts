/**
 * Resource links of the emulated Compute API. Every `selfLink`, `zone`, `targetLink`, … is a URL under the
 * emulator's own `/compute/v1/`, so a client that follows one reaches the emulator; references in requests may be
 * full URLs (ours or Google's), `projects/…` paths, or paths relative to the project (`zones/z/machineTypes/t`).
 */

export interface Links {
  /** `http://127.0.0.1:P/compute/v1` */
  readonly base: string
  /** The URL of a resource path such as `projects/p/zones/z/instances/i`. */
  readonly url: (path: string) => string
  /** A reference from a request as a path `projects/p/…`, relative references resolved against `project`. */
  readonly path: (reference: string, project: string) => string
}

export const make = (origin: string): Links => {
  const base = `${origin}/compute/v1`
  return {
    base,
    url: (path) => `${base}/${path}`,
    path: (reference, project) => {
      const after = /\/compute\/(?:v1|beta|alpha)\/(.*)$/.exec(reference)?.[1] ?? reference.replace(/^\/+/, "")
      return after.startsWith("projects/") ? after : `projects/${project}/${after}`
    }
  }
}

/** The last segment of a link or path. */
export const name = (link: string): string => link.slice(link.lastIndexOf("/") + 1)

/** Zones are `<region>-<letter>`: `europe-west1-b` is in `europe-west1`. */
export const zonePattern = /^([a-z]+-[a-z]+[0-9]+)-[a-z]$/
export const regionPattern = /^[a-z]+-[a-z]+[0-9]+$/

/** The region of a zone. */
export const regionOf = (zone: string): string => zonePattern.exec(zone)?.[1] ?? zone
