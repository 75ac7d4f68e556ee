/**
 * Every relative link in README.md and docs/*.md leads somewhere: the file
 * exists and, for a `#fragment` into Markdown, the heading does (GitHub's
 * anchor rule). The README is a front door into docs/; a dead link there is
 * a locked door.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { describe, expect, it } from 'vitest'

const ROOT = join(import.meta.dirname, '..', '..')
const pages = [join(ROOT, 'README.md'), ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => join(ROOT, 'docs', f))]

/** Markdown outside fenced code blocks and inline code, where links are links. */
function prose (text: string): string {
  return text.replace(/^```[\s\S]*?^```/gm, '').replace(/`[^`\n]*`/g, '')
}

/** GitHub's heading anchor: lower case, punctuation dropped, spaces to '-'. */
function anchors (text: string): Set<string> {
  const seen = new Map<string, number>()
  const out = new Set<string>()
  for (const [, heading] of prose(text).matchAll(/^#{1,6}\s+(.+?)\s*#*$/gm)) {
    const base = heading!.toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').trim().replace(/\s/g, '-')
    const count = seen.get(base) ?? 0
    seen.set(base, count + 1)
    out.add(count === 0 ? base : `${base}-${count}`)
  }
  return out
}

function brokenLinks (page: string): string[] {
  const text = readFileSync(page, 'utf8')
  const broken: string[] = []
  for (const [, target] of prose(text).matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target!)) continue // http:, https:, mailto:
    const [path, fragment] = target!.split('#') as [string, string | undefined]
    const file = path === '' ? page : join(dirname(page), decodeURIComponent(path))
    if (!existsSync(file)) {
      broken.push(`${relative(ROOT, page)}: ${target} (no such file)`)
      continue
    }
    if (fragment && file.endsWith('.md') && !anchors(readFileSync(file, 'utf8')).has(fragment)) {
      broken.push(`${relative(ROOT, page)}: ${target} (no such heading)`)
    }
  }
  return broken
}

describe('relative links in README.md and docs/', () => {
  it('finds the pages and the links to check', () => {
    expect(pages.length).toBeGreaterThan(10)
    expect(readFileSync(pages[0]!, 'utf8')).toMatch(/\]\(docs\/errors\.md\)/)
  })

  for (const page of pages) {
    it(`${relative(ROOT, page)}: every relative link resolves`, () => {
      expect(brokenLinks(page)).toEqual([])
    })
  }
})
