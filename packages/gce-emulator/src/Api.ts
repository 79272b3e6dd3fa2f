/**
 * The Compute API as its own definitions describe it: the REST routes, request messages and resource messages of
 * `@google-cloud/compute`'s `protos.json`, the very file the official client encodes its requests with. Requests
 * are decoded and checked against them (unknown fields refused, types and required fields checked), responses
 * are shaped by them (64-bit integers as strings; a field the message does not have is a bug of the emulator).
 *
 * **Details**
 *
 * - Every Compute v1 method gets a route, served or not: an unserved one answers 501 naming the method, not 404.
 * - Field paths in error messages are the proto names (`instance_resource.network_interfaces[0]`), as Compute's
 *   front end words them.
 * - Loading the definitions takes about a second (12 MB of JSON); it is done once per emulator.
 */
import { Effect } from "effect"
import { createRequire } from "node:module"
import protobuf from "protobufjs"
import * as ApiError from "./ApiError.ts"

const require = createRequire(import.meta.url)

/** The proto package of Compute v1. */
export const packageName = "google.cloud.compute.v1"

export interface Route {
  /** `Instances`, `ZoneOperations`, … */
  readonly service: string
  /** `Insert`, `AggregatedList`, … */
  readonly method: string
  readonly verb: string
  readonly template: string
  readonly pattern: RegExp
  /** The request fields bound by the path, in order (camelCase). */
  readonly pathFields: ReadonlyArray<string>
  /** The request field the body decodes into (camelCase), if any. */
  readonly bodyField: string | undefined
  readonly requestType: protobuf.Type
  readonly responseType: protobuf.Type
}

/** A decoded request: its fields by camelCase name, values as proto3 JSON (64-bit integers as strings). */
export type Request = Readonly<Record<string, unknown>>

/** Query parameters every Google API accepts besides the request's own fields. */
const systemParameters = new Set([
  "$alt",
  "alt",
  "$prettyPrint",
  "prettyPrint",
  "fields",
  "key",
  "quotaUser",
  "userIp",
  "callback",
  "$.xgafv",
  "access_token",
  "oauth_token",
  "upload_protocol",
  "uploadType"
])

const camel = (s: string) => s.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase())
const snake = (s: string) => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)

/** A decoding failure deep in a message; turned into an `ApiError` at the boundary. */
class Failure {
  readonly message: string
  constructor(message: string) {
    this.message = message
  }
}

const int32Types = new Set(["int32", "uint32", "sint32", "fixed32", "sfixed32"])
const int64Types = new Set(["int64", "uint64", "sint64", "fixed64", "sfixed64"])

const typeName = (type: string) => `TYPE_${type.toUpperCase()}`

const describeValue = (value: unknown) => typeof value === "string" ? `"${value}"` : JSON.stringify(value)

/** One scalar (or enum, or message) value of `field`, decoded from JSON. */
const decodeValue = (field: protobuf.FieldBase, value: unknown, at: string): unknown => {
  const resolved = field.resolvedType
  if (resolved instanceof protobuf.Type) return decodeMessage(resolved, value, at)
  if (resolved instanceof protobuf.Enum) {
    if (typeof value === "string" && value in resolved.values) return value
    if (typeof value === "number" && Object.values(resolved.values).includes(value)) return resolved.valuesById[value]
    throw new Failure(
      `Invalid value at '${at}' (type.googleapis.com/${resolved.fullName.slice(1)}), ${describeValue(value)}`
    )
  }
  const bad = () => new Failure(`Invalid value at '${at}' (${typeName(field.type)}), ${describeValue(value)}`)
  switch (field.type) {
    case "string":
    case "bytes":
      if (typeof value !== "string") throw bad()
      return value
    case "bool":
      if (typeof value !== "boolean") throw bad()
      return value
    case "float":
    case "double":
      if (typeof value === "number") return value
      if (typeof value === "string" && value.trim() !== "" && !Number.isNaN(Number(value))) return Number(value)
      throw bad()
  }
  const integer = typeof value === "number"
    ? Number.isInteger(value)
    : typeof value === "string" && /^-?\d+$/.test(value)
  if (!integer) throw bad()
  if (field.type.startsWith("u") && String(value).startsWith("-")) throw bad()
  if (int32Types.has(field.type)) return Number(value)
  if (int64Types.has(field.type)) return String(value)
  throw bad()
}

/** A message decoded from proto3 JSON; unknown names are refused, `null` means unset. */
const decodeMessage = (type: protobuf.Type, json: unknown, at: string): Request => {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new Failure(
      `Invalid value at '${at}' (type.googleapis.com/${type.fullName.slice(1)}), ${describeValue(json)}`
    )
  }
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(json)) {
    const field = type.fields[key] ?? type.fields[camel(key)]
    if (field === undefined) {
      throw new Failure(`Invalid JSON payload received. Unknown name "${key}" at '${at}': Cannot find field.`)
    }
    if (value === null) continue
    const path = `${at}.${snake(field.name)}`
    if (field instanceof protobuf.MapField) {
      if (typeof value !== "object" || Array.isArray(value)) {
        throw new Failure(`Invalid value at '${path}', ${describeValue(value)}: a map is a JSON object`)
      }
      out[field.name] = Object.fromEntries(
        Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, decodeValue(field, v, `${path}[${k}]`)])
      )
    } else if (field.repeated) {
      if (!Array.isArray(value)) throw new Failure(`Invalid value at '${path}', ${describeValue(value)}: not a list`)
      out[field.name] = value.map((v, i) => decodeValue(field, v, `${path}[${i}]`))
    } else {
      out[field.name] = decodeValue(field, value, path)
    }
  }
  return out
}

/** A value of `field` shaped for a response; throws on what the message cannot hold (an emulator bug). */
const encodeValue = (field: protobuf.FieldBase, value: unknown, at: string): unknown => {
  const resolved = field.resolvedType
  if (resolved instanceof protobuf.Type) return encodeMessage(resolved, value, at)
  if (resolved instanceof protobuf.Enum) {
    if (typeof value === "string" && value in resolved.values) return value
    throw new Error(`response ${at}: ${describeValue(value)} is not a value of ${resolved.name}`)
  }
  if (int64Types.has(field.type)) {
    if (typeof value !== "string" && typeof value !== "number" && typeof value !== "bigint") {
      throw new Error(`response ${at}: ${describeValue(value)} is not an integer`)
    }
    return String(value)
  }
  const expected = field.type === "string" || field.type === "bytes"
    ? "string"
    : field.type === "bool"
    ? "boolean"
    : "number"
  if (typeof value !== expected) throw new Error(`response ${at}: ${describeValue(value)} is not a ${field.type}`)
  return value
}

const encodeMessage = (type: protobuf.Type, value: unknown, at: string): Record<string, unknown> => {
  if (typeof value !== "object" || value === null) {
    throw new Error(`response ${at}: ${describeValue(value)} is not a ${type.name}`)
  }
  const out: Record<string, unknown> = {}
  for (const [key, v] of Object.entries(value)) {
    if (v === undefined) continue
    const field = type.fields[key]
    if (field === undefined) throw new Error(`response ${at}: ${type.name} has no field ${key}`)
    const path = `${at}.${key}`
    if (field instanceof protobuf.MapField) {
      out[key] = Object.fromEntries(
        Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, encodeValue(field, x, `${path}[${k}]`)])
      )
    } else if (field.repeated) {
      if (!Array.isArray(v)) throw new Error(`response ${path}: not a list`)
      out[key] = v.map((x, i) => encodeValue(field, x, `${path}[${i}]`))
    } else {
      out[key] = encodeValue(field, v, path)
    }
  }
  return out
}

/** A query-string value as the JSON value of `field` (the client sends every scalar as text). */
const fromQuery = (field: protobuf.FieldBase, values: ReadonlyArray<string>): unknown => {
  const one = (text: string): unknown =>
    field.type === "bool" ? (text === "true" ? true : text === "false" ? false : text) : text
  return field.repeated ? values.map(one) : one(values.at(-1)!)
}

/** Route templates such as `/compute/v1/projects/{project}/zones/{zone}` as regular expressions. */
const compile = (template: string): { readonly pattern: RegExp; readonly fields: ReadonlyArray<string> } => {
  const fields: Array<string> = []
  const source = template.split(/(\{[^}]+\})/).map((part) => {
    const variable = /^\{([^}=]+)(?:=([^}]*))?\}$/.exec(part)
    if (variable === null) return part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
    fields.push(camel(variable[1]!))
    return variable[2]?.includes("**") ? "(.+)" : "([^/]+)"
  }).join("")
  return { pattern: new RegExp(`^${source}$`), fields }
}

export interface Definitions {
  readonly root: protobuf.Root
  readonly routes: ReadonlyArray<Route>
  /** The route of `verb path`, with the values of its path variables (decoded). */
  readonly match: (
    verb: string,
    path: string
  ) => { readonly route: Route; readonly params: ReadonlyArray<string> } | undefined
  /**
   * The request of `route` from its path values, query and body text; an `ApiError` (400) for anything the API
   * would refuse.
   */
  readonly decode: (
    route: Route,
    params: ReadonlyArray<string>,
    query: URLSearchParams,
    body: string
  ) => Effect.Effect<Request, ApiError.ApiError>
  /** `value` shaped as the message `type` (short name in Compute v1); dies on a field the message lacks. */
  readonly encode: (type: string, value: unknown) => Record<string, unknown>
}

/** Reads the definitions shipped with `@google-cloud/compute`. */
export const load = (): Definitions => {
  const root = protobuf.Root.fromJSON(require("@google-cloud/compute/build/protos/protos.json") as protobuf.INamespace)
  const v1 = root.lookup(packageName) as protobuf.Namespace
  const routes: Array<Route> = []
  for (const service of v1.nestedArray) {
    if (!(service instanceof protobuf.Service)) continue
    for (const method of service.methodsArray) {
      const http = (method.parsedOptions as ReadonlyArray<Record<string, unknown>> | undefined)?.find((o) =>
        "(google.api.http)" in o
      )?.["(google.api.http)"] as
        | Record<string, string>
        | undefined
      if (http === undefined) continue
      const verb = ["get", "post", "put", "patch", "delete"].find((v) => v in http)
      if (verb === undefined) continue
      method.resolve()
      const template = http[verb]!
      const { pattern, fields } = compile(template)
      routes.push({
        service: service.name,
        method: method.name,
        verb: verb.toUpperCase(),
        template,
        pattern,
        pathFields: fields,
        bodyField: http.body === undefined ? undefined : camel(http.body),
        requestType: method.resolvedRequestType!,
        responseType: method.resolvedResponseType!
      })
    }
  }
  // Literal segments win over variables (`…/instances/{instance}/setLabels` over a longer variable match).
  const literals = (r: Route) => r.template.split("/").filter((s) => !s.startsWith("{")).length
  routes.sort((a, b) => literals(b) - literals(a))

  const match: Definitions["match"] = (verb, path) => {
    for (const route of routes) {
      if (route.verb !== verb) continue
      const m = route.pattern.exec(path)
      if (m !== null) return { route, params: m.slice(1).map((p) => decodeURIComponent(p)) }
    }
    return undefined
  }

  const decode: Definitions["decode"] = (route, params, query, body) =>
    Effect.try({
      try: () => {
        const type = route.requestType
        type.resolveAll()
        const request: Record<string, unknown> = {}
        route.pathFields.forEach((name, i) => {
          request[name] = params[i]
        })
        for (const key of new Set(query.keys())) {
          if (systemParameters.has(key)) continue
          const field = type.fields[key] ?? type.fields[camel(key)]
          if (field === undefined || route.pathFields.includes(field.name) || field.name === route.bodyField) {
            throw new Failure(
              `Invalid JSON payload received. Unknown name "${key}": Cannot bind query parameter. Field '${key}' could not be found in request message.`
            )
          }
          request[field.name] = decodeValue(field, fromQuery(field, query.getAll(key)), snake(field.name))
        }
        if (route.bodyField !== undefined) {
          const field = type.fields[route.bodyField]!
          if (!["", "\"\"", "null"].includes(body.trim())) {
            let json: unknown
            try {
              json = JSON.parse(body)
            } catch (e) {
              throw new Failure(`Invalid JSON payload received. ${(e as Error).message}`)
            }
            request[field.name] = decodeValue(field, json, snake(field.name))
          }
        } else if (!["", "\"\"", "{}", "null"].includes(body.trim())) {
          throw new Failure(`Invalid JSON payload received. ${route.service}.${route.method} takes no body.`)
        }
        for (const field of type.fieldsArray) {
          if (field.options?.["(google.api.field_behavior)"] === "REQUIRED" && request[field.name] === undefined) {
            throw new Failure(
              field.name === route.bodyField
                ? "Required field 'resource' not specified"
                : `Required parameter '${field.name}' not specified`
            )
          }
        }
        return request
      },
      catch: (e) => e instanceof Failure ? ApiError.invalid(e.message) : ApiError.invalid(String(e))
    })

  const encode: Definitions["encode"] = (type, value) => {
    const message = v1.lookupType(type)
    message.resolveAll()
    return encodeMessage(message, value, type)
  }

  return { root, routes, match, decode, encode }
}
