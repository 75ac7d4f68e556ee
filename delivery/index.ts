export { Outbox, type DeadLetter, type OutboxOptions, type OutboxSink, type Route, type SinkMetrics } from './outbox.ts'
export { createSink } from './sinks.ts'
export { DELIVERED_CHANGES, SINK_TYPES, type DeliveredChange, type Delivery, type DeliveryResult, type Sink, type SinkType } from './sink.ts'
export { deliveryConfigSchema, SINK_ENV, type SinkConfig } from './config.ts'
