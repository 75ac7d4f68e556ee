export { runSimulation, type SimulationOptions, type SimulationSummary, type SimSnapshot } from './simulator.ts'
export { loadScenario, planInjections, type Scenario, type Incident, type TruthRecord, type PolicyId } from './scenario.ts'
export { planFleet, parseMix, DEFAULT_MIX, DEFAULT_SITES, type PlannedDevice, type KindMix } from './fleet-plan.ts'
export { parseBrokerUrls, type BrokerTarget } from './broker-urls.ts'
