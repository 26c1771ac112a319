// The expression language of show-if logic, calculations and edit checks, evaluated in
// the browser over the JSON tree of bhp_ctms.crf.expressions.Expression.to_json().
//
// Every rule here is a twin of the server's (bhp_ctms/crf/expressions/, whose package
// docstring states them), written step for step the same way, so that the browser shows,
// hides and calculates exactly what the server will store: numbers are IEEE doubles on
// both sides. No eval, no dependencies (the Content-Security-Policy allows neither).
//
//   evaluate(tree, values, today)  the expression's value: text, number, boolean or null
//   holds(tree, values, today)     true, false, or null when it cannot be worked out
//   formatValue(value, precision)  the text a calculated item stores
//
// values maps item codes (event.item for [event][item]) to their canonical text, a
// multiple-choice item's codes joined by "|" (an array is joined too); today is a
// 'YYYY-MM-DD' or 'YYYY-MM-DDTHH:MM' text or a Date (the clock's when not given).

const NUMBER_TEXT = /^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$/
const DATE = /^([0-9]{4})-([0-9]{2})-([0-9]{2})(?:[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2}))?)?$/
const DAY_FIRST_DATE = /^([0-9]{2})-([0-9]{2})-([0-9]{4})(?:[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2}))?)?$/
const TIME = /^([0-9]{2}):([0-9]{2})(?::([0-9]{2}))?$/
const PARTIAL_DATE = /^([0-9]{4})-([0-9]{2}|UN)-([0-9]{2}|UN)(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2})?)?$/
// What trim() takes off: a fixed set, where String.trim() and Python's strip() differ.
const TRIMMED = /^[ \t\n\r\v\f\u00a0]+|[ \t\n\r\v\f\u00a0]+$/g
const SECONDS_PER_DAY = 86400
const UNIT_SECONDS = new Map([
  ['y', 31556952], // a year of 365.2425 days, as REDCap counts it
  ['M', 2630016], // a month of 30.44 days
  ['d', SECONDS_PER_DAY],
  ['h', 3600],
  ['m', 60],
  ['s', 1]
])
const DATE_FORMATS = ['ymd', 'mdy', 'dmy']

// Values

function isBlank (value) {
  return value === null || value === undefined
}

function valueText (value) {
  if (isBlank(value)) return ''
  if (typeof value === 'string') return value
  if (typeof value === 'boolean') return value ? '1' : '0'
  if (typeof value === 'number') return formatValue(value, null)
  if (Array.isArray(value) || value instanceof Set) {
    return Array.from(value, String).sort().join('|')
  }
  return String(value)
}

function textNumber (text) {
  if (!NUMBER_TEXT.test(text)) return null
  const number = Number(text)
  return Number.isFinite(number) ? number : null
}

function asNumber (value) {
  if (isBlank(value)) return null
  if (typeof value === 'boolean') return value ? 1 : 0
  if (typeof value === 'number') return value
  return textNumber(value)
}

function asText (value) {
  if (isBlank(value)) return ''
  if (typeof value === 'string') return value
  if (typeof value === 'boolean') return value ? '1' : '0'
  return formatValue(value, null)
}

function truth (value) {
  if (isBlank(value)) return null
  if (typeof value === 'boolean') return value
  if (typeof value === 'number') return value !== 0
  const number = textNumber(value)
  return number === null ? null : number !== 0
}

function finite (number) {
  return Number.isFinite(number) ? number : null
}

// Decimal digits of a number: [negative, digits, exponent] stands for
// digits * 10 ** exponent, digits without leading zeros ("0" for zero).
function decimalDigits (number) {
  const text = String(Math.abs(number))
  const [mantissa, power] = text.split('e')
  const [whole, fraction = ''] = mantissa.split('.')
  let digits = (whole + fraction).replace(/^0+/, '') || '0'
  let exponent = (power ? parseInt(power, 10) : 0) - fraction.length
  if (digits !== '0') {
    const stripped = digits.replace(/0+$/, '')
    exponent += digits.length - stripped.length
    digits = stripped
  } else {
    exponent = 0
  }
  return [number < 0 || Object.is(number, -0), digits, exponent]
}

function increment (digits) {
  const carried = digits.split('')
  let index = carried.length - 1
  while (index >= 0) {
    if (carried[index] === '9') {
      carried[index] = '0'
      index -= 1
    } else {
      carried[index] = String.fromCharCode(carried[index].charCodeAt(0) + 1)
      return carried.join('')
    }
  }
  return '1' + carried.join('')
}

// Rounds on the decimal digits a person sees: halfAway (2.5 to 3, -2.5 to -3), up
// (towards plus infinity) or down (towards minus infinity).
function roundDecimal (decimal, places, rounding) {
  const [negative, digits, exponent] = decimal
  const target = -places
  if (exponent >= target) return decimal
  const droppedCount = target - exponent
  let kept, firstDropped, dropped
  if (droppedCount > digits.length) {
    kept = '0'
    firstDropped = '0'
    dropped = digits
  } else {
    kept = digits.slice(0, digits.length - droppedCount) || '0'
    dropped = digits.slice(digits.length - droppedCount)
    firstDropped = dropped[0]
  }
  const anyDropped = dropped.replace(/^0+|0+$/g, '') !== ''
  let carry
  if (rounding === 'halfAway') {
    carry = firstDropped >= '5'
  } else if (rounding === 'up') {
    carry = anyDropped && !negative
  } else {
    carry = anyDropped && negative
  }
  if (carry) kept = increment(kept)
  kept = kept.replace(/^0+/, '') || '0'
  return [negative && kept !== '0', kept, target]
}

function decimalNumber (decimal) {
  const [negative, digits, exponent] = decimal
  const number = Number(`${negative ? '-' : ''}${digits}e${exponent}`)
  if (number === 0) return 0
  return finite(number)
}

function roundNumber (number, places, rounding) {
  if (!Number.isInteger(places)) return null
  // Beyond 400 places either way a double has nothing left to round.
  const clamped = Math.max(-400, Math.min(400, places))
  return decimalNumber(roundDecimal(decimalDigits(number), clamped, rounding))
}

function positional (decimal, places) {
  const [negative, digits, exponent] = decimal
  let whole, fraction
  if (exponent >= 0) {
    whole = digits + '0'.repeat(exponent)
    fraction = ''
  } else if (digits.length > -exponent) {
    whole = digits.slice(0, digits.length + exponent)
    fraction = digits.slice(digits.length + exponent)
  } else {
    whole = '0'
    fraction = '0'.repeat(-exponent - digits.length) + digits
  }
  if (fraction.length < places) fraction += '0'.repeat(places - fraction.length)
  const sign = negative && digits !== '0' ? '-' : ''
  return fraction ? `${sign}${whole}.${fraction}` : `${sign}${whole}`
}

/**
 * The text a calculated item stores for a value: '' for null, '1'/'0' for booleans,
 * text as it is; a number rounded half away from zero to `precision` decimals and
 * written with exactly that many, or without a precision in the fewest digits that
 * give it back, never in exponent notation.
 *
 * @param {string|number|boolean|null|undefined} value
 * @param {number|null|undefined} precision
 * @returns {string}
 */
export function formatValue (value, precision) {
  if (isBlank(value)) return ''
  if (typeof value === 'boolean') return value ? '1' : '0'
  if (typeof value === 'string') return value
  if (!Number.isFinite(value)) return ''
  const decimal = decimalDigits(value)
  if (isBlank(precision)) return positional(decimal, 0)
  const places = Math.max(0, Math.min(400, precision))
  return positional(roundDecimal(decimal, places, 'halfAway'), places)
}

// Dates and times: a moment is [kind, seconds], kind 'date' (at midnight), 'datetime'
// or 'time' (seconds since midnight); dates count seconds from 1970-01-01.

// Howard Hinnant's days_from_civil: integers only, so years below 100 are not
// moved into the 1900s as Date.UTC would.
function daysFromCivil (year, month, day) {
  year -= month <= 2 ? 1 : 0
  const era = Math.floor((year >= 0 ? year : year - 399) / 400)
  const yearOfEra = year - era * 400
  const dayOfYear = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear
  return era * 146097 + dayOfEra - 719468
}

function daysInMonth (year, month) {
  if (month === 2) {
    const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0)
    return leap ? 29 : 28
  }
  return [4, 6, 9, 11].includes(month) ? 30 : 31
}

function clock (hour, minute, second) {
  const hours = parseInt(hour || '0', 10)
  const minutes = parseInt(minute || '0', 10)
  const seconds = parseInt(second || '0', 10)
  if (hours > 23 || minutes > 59 || seconds > 59) return null
  return hours * 3600 + minutes * 60 + seconds
}

function parseMoment (text, dateFormat = 'ymd') {
  let found = DATE.exec(text)
  let year, month, day
  if (found !== null) {
    year = parseInt(found[1], 10)
    month = parseInt(found[2], 10)
    day = parseInt(found[3], 10)
  } else {
    found = dateFormat === 'mdy' || dateFormat === 'dmy' ? DAY_FIRST_DATE.exec(text) : null
    if (found === null) {
      const time = TIME.exec(text)
      if (time === null) return null
      const seconds = clock(time[1], time[2], time[3])
      return seconds === null ? null : ['time', seconds]
    }
    const first = parseInt(found[1], 10)
    const second = parseInt(found[2], 10)
    year = parseInt(found[3], 10)
    if (dateFormat === 'mdy') {
      month = first
      day = second
    } else {
      month = second
      day = first
    }
  }
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) {
    return null
  }
  const seconds = clock(found[4], found[5], found[6])
  if (seconds === null) return null
  const kind = found[4] === undefined ? 'date' : 'datetime'
  return [kind, daysFromCivil(year, month, day) * SECONDS_PER_DAY + seconds]
}

function dateParts (text) {
  const found = PARTIAL_DATE.exec(text)
  if (found === null) return null
  const year = parseInt(found[1], 10)
  const month = found[2] === 'UN' ? null : parseInt(found[2], 10)
  const day = found[3] === 'UN' ? null : parseInt(found[3], 10)
  if (year < 1 || (month !== null && (month < 1 || month > 12))) return null
  if (day !== null && (day < 1 || day > (month ? daysInMonth(year, month) : 31))) return null
  return [year, month, day]
}

function pad (number, width) {
  return String(number).padStart(width, '0')
}

// What an expression is evaluated with: the items' values, and the day.
class Scope {
  constructor (values, today) {
    this.values = values || {}
    this.todayGiven = today
  }

  value (key) {
    const values = this.values
    let value
    if (values instanceof Map) {
      value = values.get(key)
    } else if (Object.prototype.hasOwnProperty.call(values, key)) {
      value = values[key]
    }
    return typeof value === 'string' ? value : valueText(value)
  }

  // The given day (and time) as 'YYYY-MM-DDTHH:MM:SS'.
  clockText () {
    let given = this.todayGiven
    if (typeof given === 'string') {
      return given.length > 10 ? given : `${given}T00:00:00`
    }
    if (isBlank(given)) given = new Date()
    return `${pad(given.getFullYear(), 4)}-${pad(given.getMonth() + 1, 2)}-${pad(given.getDate(), 2)}` +
      `T${pad(given.getHours(), 2)}:${pad(given.getMinutes(), 2)}:${pad(given.getSeconds(), 2)}`
  }

  todayText () {
    return this.clockText().slice(0, 10)
  }

  today () {
    return parseMoment(this.todayText()) || ['date', 0]
  }

  // 'now': the given time if a time is given, else midnight of the given day.
  now () {
    const moment = parseMoment(this.clockText()) || ['datetime', 0]
    return ['datetime', moment[1]]
  }
}

// Operators

function divide (left, right) {
  return right === 0 ? null : finite(left / right)
}

const ARITHMETIC = {
  '+': (left, right) => finite(left + right),
  '-': (left, right) => finite(left - right),
  '*': (left, right) => finite(left * right),
  '/': divide
}

// A whole exponent multiplies by squaring, step for step as the server does.
function power (base, exponent) {
  if (Number.isInteger(exponent)) {
    let remaining = Math.abs(exponent)
    let result = 1
    let factor = base
    while (remaining > 0) {
      if (remaining % 2 === 1) result *= factor
      remaining = Math.floor(remaining / 2)
      if (remaining > 0) factor *= factor
    }
    if (exponent < 0) {
      if (result === 0) return null
      result = 1 / result
    }
    return finite(result)
  }
  return finite(Math.pow(base, exponent))
}

function family (text) {
  const moment = parseMoment(text)
  if (moment === null) return null
  return [moment[0] === 'time' ? 'time' : 'date', moment[1]]
}

function compare (operator, left, right) {
  if (isBlank(left) || isBlank(right)) return null
  const leftNumber = asNumber(left)
  const rightNumber = asNumber(right)
  let first, second
  if (leftNumber !== null && rightNumber !== null) {
    first = leftNumber
    second = rightNumber
  } else {
    const leftText = asText(left)
    const rightText = asText(right)
    const leftMoment = leftNumber === null ? family(leftText) : null
    const rightMoment = rightNumber === null ? family(rightText) : null
    if (leftMoment && rightMoment && leftMoment[0] === rightMoment[0]) {
      first = leftMoment[1]
      second = rightMoment[1]
    } else if (operator === '=') {
      return leftText === rightText
    } else if (operator === '<>') {
      return leftText !== rightText
    } else {
      return null
    }
  }
  switch (operator) {
    case '=': return first === second
    case '<>': return first !== second
    case '<': return first < second
    case '<=': return first <= second
    case '>': return first > second
    default: return first >= second
  }
}

// Functions

function numbersOf (args) {
  const numbers = []
  for (const argument of args) {
    if (isBlank(argument) || argument === '') continue
    const number = asNumber(argument)
    if (number === null) return null
    numbers.push(number)
  }
  return numbers
}

function whole (value) {
  const number = asNumber(value)
  return number !== null && Number.isInteger(number) ? number : null
}

function isTrue (value) {
  if (typeof value === 'string' && value.toLowerCase() === 'true') return true
  return truth(value) === true
}

function datediffMoment (value, dateFormat, scope) {
  const text = asText(value)
  const keyword = text.toLowerCase()
  if (keyword === 'today') return scope.today()
  if (keyword === 'now') return scope.now()
  return parseMoment(text, dateFormat)
}

function datediff (args, scope) {
  const unit = UNIT_SECONDS.get(asText(args[2]))
  if (unit === undefined) return null
  let dateFormat = 'ymd'
  let signed = false
  if (args.length >= 4) {
    const fourth = args[3]
    if (typeof fourth === 'string' && DATE_FORMATS.includes(fourth.toLowerCase())) {
      dateFormat = fourth.toLowerCase()
    } else if (args.length === 4) {
      signed = isTrue(fourth)
    }
  }
  if (args.length === 5) signed = isTrue(args[4])
  const first = datediffMoment(args[0], dateFormat, scope)
  const second = datediffMoment(args[1], dateFormat, scope)
  if (first === null || second === null) return null
  let [firstKind, firstSeconds] = first
  let [secondKind, secondSeconds] = second
  if ((firstKind === 'time') !== (secondKind === 'time')) return null
  // As REDCap: against "today", a datetime counts as its day.
  if (asText(args[0]).toLowerCase() === 'today') secondSeconds -= secondSeconds % SECONDS_PER_DAY
  if (asText(args[1]).toLowerCase() === 'today') firstSeconds -= firstSeconds % SECONDS_PER_DAY
  let seconds = secondSeconds - firstSeconds
  if (!signed) seconds = Math.abs(seconds)
  return seconds / unit
}

function rounding (mode) {
  return (args) => {
    const number = asNumber(args[0])
    const places = args.length > 1 ? asNumber(args[1]) : 0
    if (number === null || places === null) return null
    return roundNumber(number, places, mode)
  }
}

function oneNumber (operation) {
  return (args) => {
    const number = asNumber(args[0])
    return number === null ? null : operation(number)
  }
}

function aggregate (operation) {
  return (args) => {
    const numbers = numbersOf(args)
    if (numbers === null || numbers.length === 0) return null
    return operation(numbers)
  }
}

function total (numbers) {
  let sum = 0
  for (const number of numbers) sum += number
  return finite(sum)
}

function mean (numbers) {
  const sum = total(numbers)
  return sum === null ? null : sum / numbers.length
}

function smallest (numbers) {
  let result = numbers[0]
  for (const number of numbers.slice(1)) if (number < result) result = number
  return result
}

function largest (numbers) {
  let result = numbers[0]
  for (const number of numbers.slice(1)) if (number > result) result = number
  return result
}

function median (numbers) {
  const ordered = numbers.slice().sort((a, b) => a - b)
  const middle = Math.floor(ordered.length / 2)
  if (ordered.length % 2) return ordered[middle]
  return finite((ordered[middle - 1] + ordered[middle]) / 2)
}

function stdev (numbers) {
  if (numbers.length < 2) return null
  const average = mean(numbers)
  if (average === null) return null
  let squares = 0
  for (const number of numbers) {
    const deviation = number - average
    squares += deviation * deviation
  }
  return finite(Math.sqrt(squares / (numbers.length - 1)))
}

// Two texts compared without regard to case, as REDCap's text functions.
function texts (operation) {
  return (args) => operation(asText(args[0]).toLowerCase(), asText(args[1]).toLowerCase())
}

function text (operation) {
  return (args) => operation(asText(args[0]))
}

// Text functions count characters (code points), as Python does, not UTF-16 units.
function characters (value) {
  return Array.from(value)
}

function datePart (index) {
  return (args, scope) => {
    let value = asText(args[0])
    if (['today', 'now'].includes(value.toLowerCase())) value = scope.todayText()
    const parts = dateParts(value)
    const part = parts === null ? null : parts[index]
    return part === null ? null : part
  }
}

const FUNCTIONS = {
  datediff,
  round: rounding('halfAway'),
  roundup: rounding('up'),
  rounddown: rounding('down'),
  sqrt: oneNumber((number) => (number >= 0 ? Math.sqrt(number) : null)),
  abs: oneNumber(Math.abs),
  exponential: oneNumber((number) => finite(Math.exp(number))),
  log: (args) => {
    const number = asNumber(args[0])
    if (number === null || number <= 0) return null
    if (args.length === 1) return Math.log(number)
    const base = asNumber(args[1])
    if (base === null || base <= 0 || base === 1) return null
    return Math.log(number) / Math.log(base)
  },
  mod: (args) => {
    const dividend = asNumber(args[0])
    const divisor = asNumber(args[1])
    if (dividend === null || divisor === null || divisor === 0) return null
    if (!Number.isInteger(dividend) || !Number.isInteger(divisor)) return null
    return dividend % divisor
  },
  min: aggregate(smallest),
  max: aggregate(largest),
  sum: aggregate(total),
  mean: aggregate(mean),
  median: aggregate(median),
  stdev: aggregate(stdev),
  isnumber: (args) => typeof args[0] !== 'boolean' && asNumber(args[0]) !== null,
  isinteger: (args) => {
    const number = typeof args[0] === 'boolean' ? null : asNumber(args[0])
    return number !== null && Number.isInteger(number)
  },
  isblankormissingcode: (args, scope, node) => {
    const value = args[0]
    return isBlank(value) || value === '' || (typeof value === 'string' && (node.codes || []).includes(value))
  },
  contains: texts((value, part) => value.includes(part)),
  not_contain: texts((value, part) => !value.includes(part)),
  starts_with: texts((value, part) => value.startsWith(part)),
  ends_with: texts((value, part) => value.endsWith(part)),
  find: texts((part, value) => {
    const index = value.indexOf(part)
    return index < 0 ? 0 : characters(value.slice(0, index)).length + 1
  }),
  length: text((value) => characters(value).length),
  left: (args) => {
    const count = whole(args[1])
    if (count === null || count < 1) return ''
    return characters(asText(args[0])).slice(0, count).join('')
  },
  right: (args) => {
    const count = whole(args[1])
    if (count === null || count < 1) return ''
    const chars = characters(asText(args[0]))
    return chars.slice(Math.max(0, chars.length - count)).join('')
  },
  mid: (args) => {
    const start = whole(args[1])
    const count = whole(args[2])
    if (start === null || count === null || start < 1 || count < 1) return ''
    return characters(asText(args[0])).slice(start - 1, start - 1 + count).join('')
  },
  upper: text((value) => value.toUpperCase()),
  lower: text((value) => value.toLowerCase()),
  trim: text((value) => value.replace(TRIMMED, '')),
  concat: (args) => args.map(asText).join(''),
  year: datePart(0),
  month: datePart(1),
  day: datePart(2)
}

// Evaluation

function evaluateNode (node, scope) {
  switch (node.t) {
    case 'num':
    case 'str':
    case 'bool':
      return node.v
    case 'ref': {
      const value = scope.value(node.key)
      if (isBlank(node.choice)) return value
      return value.split('|').includes(node.choice) ? '1' : '0'
    }
    case 'neg': {
      const number = asNumber(evaluateNode(node.a, scope))
      return number === null ? null : -number
    }
    case 'arith': {
      let sum = asNumber(evaluateNode(node.a, scope))
      for (const [operator, operand] of node.rest) {
        if (sum === null) return null
        const number = asNumber(evaluateNode(operand, scope))
        if (number === null) return null
        sum = ARITHMETIC[operator](sum, number)
      }
      return sum
    }
    case 'pow': {
      const base = asNumber(evaluateNode(node.a, scope))
      if (base === null) return null
      const exponent = asNumber(evaluateNode(node.b, scope))
      return exponent === null ? null : power(base, exponent)
    }
    case 'cmp':
      return compare(node.op, evaluateNode(node.a, scope), evaluateNode(node.b, scope))
    case 'and': {
      let result = true
      for (const operand of node.args) {
        const holds = truth(evaluateNode(operand, scope))
        if (holds === false) return false
        if (holds === null) result = null
      }
      return result
    }
    case 'or': {
      let result = false
      for (const operand of node.args) {
        const holds = truth(evaluateNode(operand, scope))
        if (holds === true) return true
        if (holds === null) result = null
      }
      return result
    }
    case 'call': {
      if (node.f === 'if') {
        const holds = truth(evaluateNode(node.args[0], scope))
        if (holds === null) return null
        return evaluateNode(node.args[holds ? 1 : 2], scope)
      }
      const args = node.args.map((argument) => evaluateNode(argument, scope))
      return FUNCTIONS[node.f](args, scope, node)
    }
  }
  throw new Error(`Unknown expression node: ${node.t}`)
}

/**
 * The value of an expression's tree: text, a number, a boolean, or null when it cannot
 * be worked out.
 *
 * @param {object} tree Expression.to_json()
 * @param {object|Map} values item code (or event.item) to canonical text
 * @param {string|Date} [today] the day 'today' stands for ('YYYY-MM-DD[THH:MM]')
 * @returns {string|number|boolean|null}
 */
export function evaluate (tree, values, today) {
  const value = evaluateNode(tree, new Scope(values, today))
  return value === undefined ? null : value
}

/**
 * Whether a condition holds: true, false, or null when it cannot be worked out. An item
 * shows only on true; an edit check fails only on false.
 *
 * @param {object} tree Expression.to_json()
 * @param {object|Map} values item code (or event.item) to canonical text
 * @param {string|Date} [today] the day 'today' stands for
 * @returns {boolean|null}
 */
export function holds (tree, values, today) {
  return truth(evaluate(tree, values, today))
}

if (typeof window !== 'undefined') {
  window.CtmsExpressions = { evaluate, holds, formatValue }
}
