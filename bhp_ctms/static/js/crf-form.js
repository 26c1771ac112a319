// Live show-if logic and calculations on a CRF page. The server works out the same
// things from the same syntax trees when the form is saved (bhp_ctms/crf/evaluation.py);
// this script only saves the person a round trip. Without it, every item shows and
// calculated values appear after saving.

import { holds, evaluate, formatValue } from './crf-expressions.js'

const PARTS = ['day', 'month', 'year']

/** The canonical text of a date typed into three boxes ("" until it can be read). */
function dateValue (block) {
  const boxes = {}
  for (const part of PARTS) {
    const input = block.querySelector(`input[name$="-${part}"]`)
    if (!input) return null
    boxes[part] = input.value.trim().toUpperCase()
  }
  const { day, month, year } = boxes
  if (!/^\d{4}$/.test(year)) return ''
  const known = (text) => /^\d{1,2}$/.test(text)
  const pad = (text) => text.padStart(2, '0')
  if (!known(month)) return `${year}-UN-UN`
  if (!known(day)) return `${year}-${pad(month)}-UN`
  return `${year}-${pad(month)}-${pad(day)}`
}

/** The value an item block holds now, as the server would store it. */
function blockValue (block) {
  const output = block.querySelector('output[data-calculation]')
  if (output) return output.value || output.textContent.trim()
  const radios = block.querySelectorAll('.nhsuk-radios__input')
  if (radios.length) {
    const chosen = Array.from(radios).find((radio) => radio.checked)
    return chosen ? chosen.value : ''
  }
  const boxes = block.querySelectorAll('.nhsuk-checkboxes__input')
  if (boxes.length) {
    return Array.from(boxes).filter((box) => box.checked).map((box) => box.value).join('|')
  }
  const date = dateValue(block)
  if (date !== null) return date
  const field = block.querySelector(
    ':scope > .nhsuk-input-wrapper > input, :scope > textarea, :scope > select'
  )
  return field ? field.value.trim() : ''
}

function initialise (form) {
  const context = JSON.parse(form.dataset.context || '{}')
  // The server's day (UTC), so that the page and the server agree around midnight.
  const today = form.dataset.today || new Date().toISOString().slice(0, 10)
  const trees = new Map()
  const tree = (text) => {
    if (!trees.has(text)) trees.set(text, JSON.parse(text))
    return trees.get(text)
  }
  const topBlocks = Array.from(form.querySelectorAll('.ctms-item')).filter(
    (block) => !block.closest('.ctms-row')
  )

  function formValues () {
    const values = { ...context }
    for (const block of topBlocks) values[block.dataset.item] = blockValue(block)
    return values
  }

  function rowValues (row, outer) {
    const values = { ...outer }
    for (const block of row.querySelectorAll('.ctms-item')) {
      values[block.dataset.item] = blockValue(block)
    }
    return values
  }

  function calculate (scopeOf) {
    const outputs = Array.from(form.querySelectorAll('output[data-calculation]'))
    // A calculation may use another's result: repeat until nothing changes.
    for (let round = 0; round <= outputs.length; round += 1) {
      let changed = false
      for (const output of outputs) {
        const precision = output.dataset.precision === '' ? null : Number(output.dataset.precision)
        const result = formatValue(
          evaluate(tree(output.dataset.calculation), scopeOf(output), today), precision
        )
        if (output.value !== result) {
          output.value = result
          changed = true
        }
      }
      if (!changed) break
    }
  }

  function update () {
    const scopeOf = (element) => {
      const outer = formValues()
      const row = element.closest('.ctms-row')
      return row ? rowValues(row, outer) : outer
    }
    calculate(scopeOf)
    for (const element of form.querySelectorAll('[data-show-if]')) {
      element.hidden = holds(tree(element.dataset.showIf), scopeOf(element), today) !== true
    }
  }

  form.addEventListener('input', (event) => {
    update()
    const block = event.target.closest('.ctms-item')
    const reason = block && form.querySelector(`[data-reason-for="${CSS.escape(block.dataset.path)}"]`)
    if (reason && !event.target.closest('.ctms-reason')) reason.hidden = false
  })
  form.addEventListener('change', update)
  update()
}

for (const form of document.querySelectorAll('form.ctms-crf')) {
  initialise(form)
}
