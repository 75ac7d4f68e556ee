/**
 * The collector's sections of the configuration: where telemetry is
 * written (`influx`, or the embedded store when absent) and the spool,
 * batch and retention limits (`collector`). app/config.ts composes them
 * into the whole configuration.
 */
import { z } from 'zod'
import { positive } from '../shared/config-fields.ts'

/** Absent: telemetry goes to the embedded store in the data directory. */
export const influxConfigSchema = z.strictObject({
  url: z.url().describe('InfluxDB 2.x base URL'),
  token: z.string().min(1).describe('API token with write access to the bucket'),
  org: z.string().min(1).describe('InfluxDB organisation'),
  bucket: z.string().min(1).describe('bucket the collector writes to'),
}).optional().describe('InfluxDB 2.x write target, all four keys or none; absent: the embedded store')

/** Each limit left unset takes the collector's default (named in its text). */
export const collectorConfigSchema = z.strictObject({
  spoolMaxBytes: positive.describe('disk the spool may use before the collector stops acknowledging (collector default 536870912, 512 MiB)'),
  batchSize: positive.describe('points per write to the store (collector default 5000)'),
  retentionDays: positive.describe('days of history kept by the embedded store (collector default 7)'),
}).partial().default({})
