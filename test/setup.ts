// Every test process runs aedes as `placeguard` does: with its load-time patches (broker/aedes-patches.ts).
import { installAedesPatches } from '../broker/aedes-patches.ts'

installAedesPatches()
