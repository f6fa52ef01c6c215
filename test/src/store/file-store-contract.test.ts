import { readFile, writeFile } from 'node:fs/promises'
import { TOKENS_FILE, TokenStore } from '../../../src/store/file-store.js'
import { tempDir } from '../../helpers/stack.js'
import { registerStoreContract } from './store-contract.js'

registerStoreContract('file store', {
  async open (t) {
    const dir = await tempDir(t)
    let current = new TokenStore(dir)
    await current.open()
    t.after(() => current.close())
    return {
      store: current,
      async reopen () {
        await current.close()
        current = new TokenStore(dir)
        await current.open()
        return current
      },
      async corruptRequests () {
        const path = `${dir}/${TOKENS_FILE}`
        const data = JSON.parse(await readFile(path, 'utf8')) as { accounts: Array<Record<string, unknown>> }
        data.accounts[0]!.requests = 'many'
        await writeFile(path, JSON.stringify(data))
      }
    }
  }
})
