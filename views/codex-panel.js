// @ts-check
/** The "Use with Codex CLI" panel: the config.toml lines for this server's own address. */
import { byId, say } from './dom.js'

/**
 * @typedef {{ version: string, base_url: string, codex_base_url: string, chatgpt_base_url: string, websocket: boolean, api_keys_required: boolean, admin_token_required: boolean }} ServerInfo
 */

/**
 * The README's recommended setup while the server serves WebSocket (a provider named "OpenAI":
 * WebSocket turns and remote compaction), else the simple one. A JSON string is a valid TOML basic string.
 * @param {ServerInfo} info
 */
export function codexConfig (info) {
  const lines = info.websocket
    ? [
        'model_provider = "codex_equilibrium"',
        `chatgpt_base_url = ${JSON.stringify(info.chatgpt_base_url)}`,
        '',
        '[model_providers.codex_equilibrium]',
        'name = "OpenAI"',
        `base_url = ${JSON.stringify(info.codex_base_url)}`,
        'wire_api = "responses"',
        'supports_websockets = true'
      ]
    : [
        'model_provider = "codex_equilibrium"',
        '',
        '[model_providers.codex_equilibrium]',
        'name = "codex_equilibrium"',
        `base_url = ${JSON.stringify(info.base_url)}`,
        'wire_api = "responses"'
      ]
  if (info.api_keys_required) lines.push('env_key = "CODEX_EQ_API_KEY"')
  return `${lines.join('\n')}\n`
}

/** @param {ServerInfo} info */
export function showCodexPanel (info) {
  const snippet = byId('codex-config')
  const env = byId('codex-env')
  const copy = byId('codex-copy')
  const result = byId('codex-copy-result')
  snippet.textContent = codexConfig(info)
  env.hidden = !info.api_keys_required
  copy.onclick = async () => {
    try {
      await navigator.clipboard.writeText(snippet.textContent ?? '')
      say(result, 'ok', 'Copied.')
    } catch {
      // Without clipboard access (e.g. a plain-HTTP LAN address), select it for a manual copy.
      getSelection()?.selectAllChildren(snippet)
      say(result, 'error', 'This browser does not allow copying here: the text is selected, press Ctrl+C (⌘C).')
    }
  }
}
