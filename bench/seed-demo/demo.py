"""The seed's Flask demo (../../shared/seed/), rebuilt as the benchmark baseline.

It is the original app as its README describes it: fhirclient 4.1.0, the settings
app_id / api_base / redirect_uri / scope, the routes `/`, `/index.html`, `/fhir-app/`,
`/logout`, `/reset`, and the client's state kept in the Flask session through
`_get_smart` / `_save_state`, as in fhirclient's own Flask example.

Only the deployment knobs come from the environment so that the benchmark can point it
at our sandbox on 127.0.0.1 instead of the Cerner sandbox:

  SEED_APP_ID        client id            (default: the seed's Cerner client id)
  SEED_API_BASE      FHIR base URL        (default: the seed's Cerner tenant)
  SEED_REDIRECT_URI  OAuth redirect URI   (default: http://localhost:8000/fhir-app/)
  SEED_SCOPE         requested scope      (default: launch/patient patient/Patient.read)
  SEED_PORT          listen port          (default: 8000)
  SEED_SECRET_KEY    Flask session key    (default: random per process)
  SEED_DEBUG         "1" runs Flask's debug server as the seed did (default: off, so that
                     the benchmark measures one process without the reloader)
"""

import os
import secrets

from flask import Flask, redirect, request, session
from fhirclient import client

app = Flask(__name__)
app.secret_key = os.environ.get("SEED_SECRET_KEY") or secrets.token_hex(32)

# The seed's settings; the environment may override them (see the module doc).
smart_defaults = {
    'app_id': os.environ.get('SEED_APP_ID', 'd8ec5b28-c1fd-4a97-9210-bb3576f737e8'),
    'api_base': os.environ.get(
        'SEED_API_BASE',
        'https://fhir-myrecord.cerner.com/r4/ec2458f2-1e24-41c8-b71b-0e701af7583d'),
    'redirect_uri': os.environ.get('SEED_REDIRECT_URI', 'http://localhost:8000/fhir-app/'),
    'scope': os.environ.get('SEED_SCOPE', 'launch/patient patient/Patient.read'),
}


def _save_state(state):
    session['state'] = state


def _get_smart():
    state = session.get('state')
    if state:
        return client.FHIRClient(state=state, save_func=_save_state)
    return client.FHIRClient(settings=smart_defaults, save_func=_save_state)


def _logout():
    if 'state' in session:
        smart = _get_smart()
        smart.reset_patient()


def _reset():
    if 'state' in session:
        del session['state']


@app.route('/')
@app.route('/index.html')
def index():
    """ The app's main page.
    """
    smart = _get_smart()
    body = "<h1>Hello</h1>"

    # "ready" may be true while the access token has expired, leaving smart.patient None.
    if smart.ready and smart.patient is not None:
        name = smart.human_name(
            smart.patient.name[0] if smart.patient.name and len(smart.patient.name) > 0 else 'Unknown')
        body += "<p>You are authorized and ready to make API requests for <em>{0}</em>.</p>".format(name)
        print(smart.patient.as_json())
        body += """<p><a href="/logout">Change patient</a></p>"""
    else:
        auth_url = smart.authorize_url
        if auth_url is not None:
            body += """<p>Please <a href="{0}">authorize</a>.</p>""".format(auth_url)
        else:
            body += """<p>Running against a no-auth server, nothing to demo here. """
        body += """<p><a href="/reset" style="font-size:small;">Reset</a></p>"""
    return body


@app.route('/fhir-app/')
def callback():
    """ OAuth2 callback interception.
    """
    smart = _get_smart()
    try:
        smart.handle_callback(request.url)
    except Exception as e:
        return """<h1>Authorization Error</h1><p>{0}</p><p><a href="/">Start over</a></p>""".format(e)
    return redirect('/')


@app.route('/logout')
def logout():
    _logout()
    return redirect('/')


@app.route('/reset')
def reset():
    _reset()
    return redirect('/')


if __name__ == '__main__':
    port = int(os.environ.get('SEED_PORT', '8000'))
    app.run(host='127.0.0.1', port=port, debug=os.environ.get('SEED_DEBUG') == '1')
