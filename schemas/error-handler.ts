/**
 * Options of the production error handler.
 */
import { z } from 'zod'

/** Options of the `errorHandler` plugin. */
export const errorHandlerSchema = z.strictObject({
  /** Message sent with 5xx responses instead of the error's own. */
  message: z.string().min(1).default('Internal Server Error'),
  /** Leave 4xx messages (validation errors a client must see) as they are. */
  exposeClientErrors: z.boolean().default(true)
})

/** What a user passes to the `errorHandler` plugin. */
export type ErrorHandlerOptions = z.input<typeof errorHandlerSchema>
/** The resolved `errorHandler` options. */
export type ErrorHandlerConfig = z.output<typeof errorHandlerSchema>
