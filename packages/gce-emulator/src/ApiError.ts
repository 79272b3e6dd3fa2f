/**
 * The errors the emulator answers with, in the shape Compute Engine gives them: an HTTP status and a JSON body
 * `{ error: { code, message, errors: [{ message, domain, reason }], status } }`, which the official client turns
 * into a `GoogleError` with the matching gRPC code. Each failure carries a `reason` naming what happened.
 */
import { Schema } from "effect"

/** The request is malformed: unknown field, wrong type, missing required field, invalid value. */
export class Invalid extends Schema.TaggedError<Invalid>()("Invalid", { message: Schema.String }) {}

/** The resource named in the path (or referenced by the request) does not exist. */
export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", { message: Schema.String }) {}

/** A resource with that name already exists. */
export class AlreadyExists extends Schema.TaggedError<AlreadyExists>()("AlreadyExists", { message: Schema.String }) {}

/** A precondition of the request (a fingerprint) does not hold. */
export class ConditionNotMet extends Schema.TaggedError<ConditionNotMet>()("ConditionNotMet", {
  message: Schema.String
}) {}

/** The resource is used by another one and cannot be changed or removed now. */
export class InUse extends Schema.TaggedError<InUse>()("InUse", { message: Schema.String }) {}

/** A Compute method the emulator does not serve. */
export class NotImplemented extends Schema.TaggedError<NotImplemented>()("NotImplemented", {
  message: Schema.String
}) {}

export const Reason = Schema.Union([Invalid, NotFound, AlreadyExists, ConditionNotMet, InUse, NotImplemented])
export type Reason = typeof Reason.Type

export class ApiError extends Schema.TaggedError<ApiError>()("ApiError", { reason: Reason }) {
  override get message(): string {
    return this.reason.message
  }
}

export const invalid = (message: string) => new ApiError({ reason: new Invalid({ message }) })
export const notFound = (message: string) => new ApiError({ reason: new NotFound({ message }) })
export const alreadyExists = (message: string) => new ApiError({ reason: new AlreadyExists({ message }) })
export const conditionNotMet = (message: string) => new ApiError({ reason: new ConditionNotMet({ message }) })
export const inUse = (message: string) => new ApiError({ reason: new InUse({ message }) })
export const notImplemented = (message: string) => new ApiError({ reason: new NotImplemented({ message }) })

/** `The resource 'projects/p/zones/z/instances/i' was not found`, as Compute words it. */
export const resourceNotFound = (path: string) => notFound(`The resource '${path}' was not found`)

/** `The resource '…' already exists`. */
export const resourceExists = (path: string) => alreadyExists(`The resource '${path}' already exists`)

/** `Invalid value for field 'resource.x': 'v'. why` */
export const invalidField = (field: string, value: string, why: string) =>
  invalid(`Invalid value for field '${field}': '${value}'. ${why}`)

/** HTTP status, canonical status and Compute's `reason` word of each reason. */
const wire: Record<Reason["_tag"], readonly [number, string, string]> = {
  Invalid: [400, "INVALID_ARGUMENT", "invalid"],
  NotFound: [404, "NOT_FOUND", "notFound"],
  AlreadyExists: [409, "ALREADY_EXISTS", "alreadyExists"],
  ConditionNotMet: [412, "FAILED_PRECONDITION", "conditionNotMet"],
  InUse: [400, "FAILED_PRECONDITION", "resourceInUseByAnotherResource"],
  NotImplemented: [501, "UNIMPLEMENTED", "notImplemented"]
}

/** The HTTP status and JSON body of an error. */
export const toHttp = (error: ApiError): { readonly status: number; readonly body: unknown } => {
  const [status, canonical, reason] = wire[error.reason._tag]
  const message = error.reason.message
  return {
    status,
    body: { error: { code: status, message, errors: [{ message, domain: "global", reason }], status: canonical } }
  }
}
