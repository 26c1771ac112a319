// Copies the compiled NHS.UK frontend from node_modules into bhp_ctms/static/vendor/nhsuk/,
// under names that do not change with its version, so templates and app.js can link them.
//
//   npm ci && npm run build
//
// Two changes are made to the stylesheet, both because of our Content-Security-Policy
// (font-src 'self', img-src 'self'):
// - its @font-face rules load Frutiger from assets.nhs.uk, a licensed font we may not
//   copy; they are removed, so pages use the design system's fallback (Arial) without
//   the browser reporting a blocked request on every page;
// - its icons are referenced as url(/assets/...), from the site root; they become
//   relative to the stylesheet, where the assets are copied.

import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const source = join(root, 'node_modules', 'nhsuk-frontend', 'dist', 'nhsuk')
const target = join(root, 'bhp_ctms', 'static', 'vendor', 'nhsuk')

if (!existsSync(source)) {
  console.error(`${relative(root, source)} is missing: run "npm ci" first.`)
  process.exit(1)
}

const { version } = JSON.parse(
  readFileSync(join(root, 'node_modules', 'nhsuk-frontend', 'package.json'), 'utf8')
)

/** The stylesheet, made to work under our path and our Content-Security-Policy. */
function adaptStylesheet (css) {
  const withoutFonts = css.replace(/@font-face\{[^}]*assets\.nhs\.uk[^}]*\}/g, '')
  const withRelativeAssets = withoutFonts.replaceAll('url(/assets/', 'url(assets/')
  // The source map describes the unchanged file, so it is not copied or referred to.
  const adapted = withRelativeAssets.replace(/\n?\/\*# sourceMappingURL=[^*]*\*\/\s*$/, '\n')
  const leftovers = adapted.match(/url\((?!assets\/|data:)[^)]*\)/g)
  if (leftovers) {
    throw new Error(`nhsuk-frontend.min.css still loads from elsewhere: ${leftovers.join(', ')}`)
  }
  return adapted
}

rmSync(target, { recursive: true, force: true })
mkdirSync(target, { recursive: true })

writeFileSync(
  join(target, 'nhsuk-frontend.min.css'),
  adaptStylesheet(readFileSync(join(source, 'nhsuk-frontend.min.css'), 'utf8'))
)
// An ES module exporting initAll() and each component; app.js imports it.
for (const name of ['nhsuk-frontend.min.js', 'nhsuk-frontend.min.js.map']) {
  cpSync(join(source, name), join(target, name))
}
cpSync(join(source, 'assets'), join(target, 'assets'), { recursive: true })
writeFileSync(join(target, 'VERSION'), `${version}\n`)

console.log(`nhsuk-frontend ${version} -> ${relative(root, target)}`)
