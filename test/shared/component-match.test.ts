/**
 * The OSV evaluation algorithm (shared/component-match.ts) and package
 * keys (shared/package-url.ts): SEMVER by semver precedence, pre-releases
 * included; ECOSYSTEM by the generic order, low confidence; last_affected,
 * limit and several intervals as the OSV schema's pseudocode has them.
 */
import { describe, expect, it } from 'vitest'
import { type AdvisoryPackage, componentAffected, type OsvRange } from '../../shared/component-match.ts'
import { osvPackageKey, packageKey, parsePackageUrl, repositoryKey } from '../../shared/package-url.ts'

const pkg = (ranges: OsvRange[], versions: string[] = []): AdvisoryPackage => ({ key: 'pkg:npm/mqtt', name: 'mqtt', ranges, versions })
const affected = (p: AdvisoryPackage, version: string) => componentAffected(p, version)

describe('OSV ranges', () => {
  it('orders SEMVER by precedence: a pre-release of the fix is still affected, build metadata is not a newer version', () => {
    const semver = pkg([{ type: 'SEMVER', events: [{ introduced: '1.0.0' }, { fixed: '1.0.2' }, { introduced: '3.0.0' }, { fixed: '3.2.5' }] }])
    expect(affected(semver, '0.9.9')).toBeUndefined()
    expect(affected(semver, '1.0.0')).toEqual({ confidence: 'high', matched: 'SEMVER >=1.0.0 <1.0.2', fixed: '1.0.2' })
    expect(affected(semver, '1.0.2-rc.1')).toMatchObject({ confidence: 'high', fixed: '1.0.2' })
    expect(affected(semver, '1.0.2')).toBeUndefined()
    expect(affected(semver, '2.9.0')).toBeUndefined()
    expect(affected(semver, '3.0.0-beta.1')).toBeUndefined()
    expect(affected(semver, 'v3.2.4')).toMatchObject({ matched: 'SEMVER >=3.0.0 <3.2.5', fixed: '3.2.5' })
    expect(affected(semver, '3.2.5+build.7')).toBeUndefined()
  })

  it('sorts events before walking them, "0" first, as the schema says', () => {
    const unsorted = pkg([{ type: 'SEMVER', events: [{ fixed: '2.0.0' }, { introduced: '1.5.0' }, { fixed: '1.2.0' }, { introduced: '0' }] }])
    expect(affected(unsorted, '1.1.0')).toMatchObject({ matched: 'SEMVER >=0 <1.2.0' })
    expect(affected(unsorted, '1.3.0')).toBeUndefined()
    expect(affected(unsorted, '1.10.0')).toMatchObject({ fixed: '2.0.0' })
  })

  it('reads last_affected as inclusive and limit as an upper bound on the whole range', () => {
    const last = pkg([{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { last_affected: '2.1.214' }] }])
    expect(affected(last, '2.1.214')).toEqual({ confidence: 'low', matched: 'ECOSYSTEM >=0 <=2.1.214', fixed: null })
    expect(affected(last, '2.1.215')).toBeUndefined()
    const limited = pkg([{ type: 'SEMVER', events: [{ introduced: '1.0.0' }, { limit: '1.5.0' }] }])
    expect(affected(limited, '1.4.9')).toMatchObject({ fixed: null })
    expect(affected(limited, '1.5.0')).toBeUndefined()
    expect(affected(pkg([{ type: 'SEMVER', events: [{ introduced: '1.0.0' }, { limit: '*' }] }]), '9.0.0')).toBeDefined()
  })

  it('reads a component version that is not semver by the generic order, at low confidence', () => {
    const semver = pkg([{ type: 'SEMVER', events: [{ introduced: '0' }, { fixed: '2.28.7' }] }])
    expect(affected(semver, '2.28')).toEqual({ confidence: 'low', matched: 'SEMVER >=0 <2.28.7', fixed: '2.28.7' })
    expect(affected(semver, '2.28.8.1')).toBeUndefined()
  })

  it('takes a listed version as exact, and still names the fix from the ranges beside it', () => {
    const listed = pkg([{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '1.4' }] }], ['1.2', '1.3'])
    expect(affected(listed, '1.3')).toEqual({ confidence: 'high', matched: 'version 1.3', fixed: '1.4' })
    expect(affected(pkg([], ['v3.5.1']), '3.5.1')).toMatchObject({ confidence: 'high' })
    expect(affected(pkg([], ['v3.5.1']), '3.5.10')).toBeUndefined()
  })
})

describe('package keys', () => {
  it('compares type, namespace and name; version, qualifiers and case aside', () => {
    const key = (text: string) => packageKey(parsePackageUrl(text))
    expect(key('pkg:github/Mbed-TLS/mbedtls@v3.5.1?arch=arm#library')).toBe('pkg:github/mbed-tls/mbedtls')
    expect(key('pkg:npm/%40aws-sdk/client-iot@3.400.0')).toBe('pkg:npm/@aws-sdk/client-iot')
    expect(key('pkg:pypi/Paho_MQTT@1.6.1')).toBe(osvPackageKey('PyPI', 'paho-mqtt', null))
    expect(osvPackageKey('Maven', 'org.eclipse.paho:org.eclipse.paho.client.mqttv3', null)).toBe('pkg:maven/org.eclipse.paho/org.eclipse.paho.client.mqttv3')
    expect(osvPackageKey('Go', 'github.com/eclipse/paho.mqtt.golang', null)).toBe(key('pkg:golang/github.com/eclipse/paho.mqtt.golang@v1.4.3'))
    expect(osvPackageKey('Debian:12', 'mosquitto', null)).toBe('pkg:deb/debian/mosquitto')
    expect(osvPackageKey('OSS-Fuzz', 'lwip', null)).toBe('osv:oss-fuzz/lwip')
    expect(repositoryKey('https://github.com/eclipse/paho.mqtt.c.git')).toBe('pkg:github/eclipse/paho.mqtt.c')
    expect(repositoryKey('https://git.savannah.nongnu.org/git/lwip.git')).toBeUndefined()
  })

  it('refuses what is not a purl, saying what', () => {
    expect(() => parsePackageUrl('mbedtls@3.5.1')).toThrow(/not a package URL/)
    expect(() => parsePackageUrl('pkg:github/')).toThrow(/no name/)
    expect(() => parsePackageUrl('pkg:generic/mbed%ZZtls')).toThrow(/not percent-encoded/)
  })
})
