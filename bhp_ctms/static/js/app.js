// BHP CTMS progressive enhancement. Every page works without this script; it only
// makes some things quicker to use. It is an ES module loaded from a file because the
// Content-Security-Policy forbids inline script.

import { initAll } from '../vendor/nhsuk/nhsuk-frontend.min.js'

// The NHS.UK page template does this with an inline script at the top of <body>. This
// module only runs in browsers that support ES modules, which is nhsuk-frontend's own
// test for "supported".
document.body.classList.add('js-enabled', 'nhsuk-frontend-supported')

/**
 * The study switcher in the header: open the chosen study as soon as it is chosen.
 * The hint beside the select, shown only with this script, says so beforehand
 * (WCAG 3.2.2 On Input). Without the script, the Go button submits the form.
 *
 * @param {HTMLFormElement} form
 */
function enhanceStudySwitcher (form) {
  const select = form.querySelector('select')
  const button = form.querySelector('button[type="submit"]')
  if (!select || !button) {
    return
  }
  button.hidden = true
  const hint = form.querySelector('.app-study-switcher__hint')
  if (hint) {
    select.setAttribute('aria-describedby', hint.id)
  }
  const initial = select.value
  select.addEventListener('change', () => {
    if (select.value && select.value !== initial) {
      form.requestSubmit()
    }
  })
}

// A page showing an error summary keeps the focus there rather than on a banner.
const hasErrorSummary = document.querySelector('[data-module="nhsuk-error-summary"]') !== null

initAll({
  notificationBanner: { disableAutoFocus: hasErrorSummary }
})

document
  .querySelectorAll('form[data-module="app-study-switcher"]')
  .forEach((form) => enhanceStudySwitcher(/** @type {HTMLFormElement} */ (form)))
