/**
 * The dashboards room's config door: the API's section of the
 * configuration, which app/config.ts composes without loading fastify.
 */
export { apiTokensSchema, httpMaxConnectionsPerAddressSchema, httpMaxConnectionsSchema } from './api/config.ts'
