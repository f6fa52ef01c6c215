import { stdTimeFunctions, type LoggerOptions } from 'pino'
import type { LogLevel } from './config.js'

/**
 * Log options shared by the server and the CLI. Requests are logged by method and path only:
 * query strings can carry OAuth codes and states, headers carry tokens, bodies carry conversations.
 */
export function loggerOptions (level: LogLevel): LoggerOptions {
  return {
    level,
    // "2026-11-29T03:07:25.123Z" reads at a glance and sorts; epoch milliseconds do neither.
    timestamp: stdTimeFunctions.isoTime,
    redact: {
      paths: ['headers.authorization', 'headers.cookie', 'req.headers', 'res.headers', '*.access_token', '*.refresh_token', '*.id_token', 'tokens'],
      censor: '[redacted]'
    },
    serializers: {
      req: (req: { method?: string, url?: string, id?: string }) => ({ id: req.id, method: req.method, path: req.url?.split('?')[0] }),
      res: (res: { statusCode?: number }) => ({ status: res.statusCode })
    }
  }
}
