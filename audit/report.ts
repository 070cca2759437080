/**
 * What `doctor` and `check` report: one result per check, with a stable id, and the plain-text
 * table the command line prints.
 */

/** How much a failed check matters: `error` makes the command exit 1, the others only inform. */
export type Severity = 'error' | 'warning' | 'info'

/** `skip`: the check does not apply here, or could not run (the message says which). */
export type CheckStatus = 'pass' | 'fail' | 'skip'

/** A check as documented: its stable id, what it asks, how much a failure matters, the fix. */
export interface CheckDefinition {
  /** Stable id, e.g. `SH-TLS-002`; never reused for another meaning. */
  id: string
  severity: Severity
  /** What the check asks, phrased so that `pass` answers it. */
  title: string
  /** How to make a failing check pass. */
  fix: string
}

/** One check's outcome. */
export interface CheckResult extends CheckDefinition {
  status: CheckStatus
  /** What was found, naming the variable or the value. */
  message: string
}

/** The counts that decide the exit code. */
export interface ReportSummary {
  /** No failed check of severity `error`. */
  ok: boolean
  errors: number
  warnings: number
  passed: number
  skipped: number
}

/** Counts the failures by severity. @internal */
export function summarize (checks: readonly CheckResult[]): ReportSummary {
  let errors = 0
  let warnings = 0
  let passed = 0
  let skipped = 0
  for (const check of checks) {
    if (check.status === 'pass') passed++
    else if (check.status === 'skip') skipped++
    else if (check.severity === 'error') errors++
    else if (check.severity === 'warning') warnings++
  }
  return { ok: errors === 0, errors, warnings, passed, skipped }
}

/** A result for a definition. @internal */
export function result (definition: CheckDefinition, status: CheckStatus, message: string): CheckResult {
  return { ...definition, status, message }
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`

/** The last line of a report: `2 errors, 1 warning, 20 passed, 3 skipped`. @internal */
export function summaryLine (summary: ReportSummary): string {
  return `${plural(summary.errors, 'error')}, ${plural(summary.warnings, 'warning')}, ${summary.passed} passed, ${summary.skipped} skipped`
}

/**
 * The checks as a table: failures first with their fix, then the rest. Plain text, no colours,
 * so that it reads the same in a terminal, a CI log and a ticket. @internal
 */
export function formatChecks (checks: readonly CheckResult[]): string {
  const idWidth = Math.max(...checks.map((check) => check.id.length), 2)
  const order = (check: CheckResult): number => check.status === 'fail' ? (check.severity === 'error' ? 0 : check.severity === 'warning' ? 1 : 2) : check.status === 'pass' ? 3 : 4
  const sorted = checks.slice().sort((a, b) => order(a) - order(b))
  const lines = [`  ${'STATUS'.padEnd(6)}  ${'SEVERITY'.padEnd(8)}  ${'ID'.padEnd(idWidth)}  CHECK`]
  const indent = ' '.repeat(2 + 6 + 2 + 8 + 2 + idWidth + 2)
  for (const check of sorted) {
    // A failed info check is advice, not a failure.
    const status = check.status === 'fail' ? (check.severity === 'info' ? 'note' : 'FAIL') : check.status
    const head = `  ${status.padEnd(6)}  ${check.severity.padEnd(8)}  ${check.id.padEnd(idWidth)}  ${check.title}`
    if (check.status === 'fail') {
      lines.push(head, `${indent}${check.message}`, `${indent}fix: ${check.fix}`)
    } else {
      lines.push(`${head}: ${check.message}`)
    }
  }
  return lines.join('\n')
}
