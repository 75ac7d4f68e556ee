// Token sign-in. The token is checked with GET /api/whoami and kept in
// sessionStorage for this tab only; it never goes into a URL.
import { api, session } from './api.js'
import { h, on, replace } from './dom.js'

export function mountLogin (main, { message, onSignedIn }) {
  const input = h('input', { id: 'token', name: 'token', type: 'password', required: true, autocomplete: 'current-password', spellcheck: 'false', 'aria-describedby': 'token-help' })
  const error = h('p', { class: 'error', role: 'alert', id: 'login-error', hidden: !message }, message ?? '')
  const submit = h('button', { type: 'submit', class: 'button' }, 'Sign in')
  const form = h('form', { class: 'login panel', 'aria-labelledby': 'page-title' },
    h('h1', { id: 'page-title', tabindex: '-1' }, 'Sign in'),
    h('p', { id: 'token-help', class: 'muted' }, 'Use an API token from your administrator (PLACEGUARD_API_TOKENS). It is kept for this browser tab only.'),
    h('label', { for: 'token' }, 'API token'), input,
    error, submit)
  on(form, 'submit', async (event) => {
    event.preventDefault()
    const token = input.value.trim()
    if (!token) return
    submit.disabled = true
    error.hidden = true
    try {
      const { role } = await api.whoami(token)
      session.save(token, role)
      onSignedIn()
    } catch (failure) {
      error.textContent = failure.status === 401 || failure.status === 403
        ? 'That token was not accepted.'
        : `Cannot reach PlaceGuard: ${failure.message}`
      error.hidden = false
      submit.disabled = false
      input.focus()
    }
  })
  replace(main, form)
  input.focus()
}
