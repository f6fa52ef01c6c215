import type { Page } from './callback-listener.js'

function escapeHtml (text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

function page (status: number, title: string, body: string, backUrl: string | null): Page {
  const back = backUrl === null ? '<p>You can close this window.</p>' : `<p><a href="${escapeHtml(backUrl)}">Back to the dashboard</a></p>`
  return {
    status,
    html: '<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">' +
      `<title>${escapeHtml(title)} · Codex Equilibrium</title>` +
      '<style>body{font:16px/1.5 system-ui,sans-serif;max-width:34rem;margin:4rem auto;padding:0 1rem;color:#1d1d1f}h1{font-size:1.4rem}</style></head>' +
      `<body><h1>${escapeHtml(title)}</h1>${body}${back}</body></html>`
  }
}

export function successPage (account: string, backUrl: string | null): Page {
  return page(200, 'Account added', `<p>${escapeHtml(account)} is now in the pool.</p>`, backUrl)
}

export function failurePage (status: number, message: string, backUrl: string | null): Page {
  return page(status, 'Sign-in failed', `<p>${escapeHtml(message)}</p>`, backUrl)
}

export function cancelledPage (): Page {
  return page(200, 'Sign-in cancelled', '<p>The pending sign-in was cancelled and the callback port is free again.</p>', null)
}
