#!/bin/sh
# Alertmanager's entrypoint in this stack: renders the receivers' integrations from the
# environment into the routing file, then runs Alertmanager on the result. Alertmanager
# expands no variables in its configuration, hence this step.
#
#   entrypoint.sh render TEMPLATE           print TEMPLATE with the integrations filled in
#   entrypoint.sh TEMPLATE [FLAGS...]       render to $ALERTMANAGER_RENDERED (/tmp/alertmanager.yml),
#                                           then exec alertmanager --config.file=it FLAGS
#
# Each `# integrations` comment line of TEMPLATE is replaced, at its indentation, by one entry
# per integration whose variable is set (.env.example, "Where alerts go"):
#   ALERT_WEBHOOK_URL        any HTTP endpoint, sent Alertmanager's webhook JSON
#   ALERT_SLACK_WEBHOOK_URL  a Slack incoming webhook (ALERT_SLACK_CHANNEL to override its channel)
#   ALERT_EMAIL_TO           addresses, sent over SMTP: ALERT_SMTP_SMARTHOST (host:port) and
#                            ALERT_EMAIL_FROM needed; ALERT_SMTP_USERNAME, ALERT_SMTP_PASSWORD,
#                            ALERT_SMTP_REQUIRE_TLS (true) optional
#   ALERT_GRAFANA_URL        Grafana's address, put before each alert's dashboard path in messages
# With none set, the receivers send nothing: not an error. A value Alertmanager could not use
# is refused here, naming the variable, and Alertmanager does not start.
set -eu

render() {
  awk '
    function fail(message) { print "alertmanager: " message > "/dev/stderr"; exit 2 }
    # A YAML double-quoted scalar, escaped character by character: awks differ in what a
    # backslash means in the replacement of gsub.
    function quote(value,    out, i, c) {
      out = ""
      for (i = 1; i <= length(value); i++) {
        c = substr(value, i, 1)
        if (c == "\\" || c == "\"") out = out "\\" c
        else if (c == "\n") out = out "\\n"
        else out = out c
      }
      return "\"" out "\""
    }
    function url(name, value) {
      if (value !~ /^https?:\/\/[^ ]+$/) fail(name " must be an http:// or https:// URL, not \"" value "\"")
      return quote(value)
    }
    function integrations(pad,    out, tls) {
      out = ""
      if (webhook != "")
        out = out pad "webhook_configs:\n" pad "  - url: " url("ALERT_WEBHOOK_URL", webhook) "\n" \
          pad "    send_resolved: true\n"
      if (slack != "") {
        out = out pad "slack_configs:\n" pad "  - api_url: " url("ALERT_SLACK_WEBHOOK_URL", slack) "\n" \
          pad "    send_resolved: true\n" \
          pad "    title: " quote(title) "\n" \
          pad "    text: " quote(slack_text) "\n"
        if (channel != "") out = out pad "    channel: " quote(channel) "\n"
      }
      if (mail_to != "") {
        if (smarthost !~ /^[^ :]+:[0-9]+$/)
          fail("ALERT_EMAIL_TO is set: ALERT_SMTP_SMARTHOST must be host:port, not \"" smarthost "\"")
        if (mail_from !~ /@/) fail("ALERT_EMAIL_TO is set: ALERT_EMAIL_FROM must be an address, not \"" mail_from "\"")
        tls = ENVIRON["ALERT_SMTP_REQUIRE_TLS"]
        if (tls == "") tls = "true"
        if (tls != "true" && tls != "false") fail("ALERT_SMTP_REQUIRE_TLS must be true or false, not \"" tls "\"")
        out = out pad "email_configs:\n" pad "  - to: " quote(mail_to) "\n" \
          pad "    from: " quote(mail_from) "\n" \
          pad "    smarthost: " quote(smarthost) "\n" \
          pad "    require_tls: " tls "\n" \
          pad "    send_resolved: true\n" \
          pad "    headers:\n" pad "      Subject: " quote(title) "\n" \
          pad "    html: " quote(mail_html) "\n"
        if (ENVIRON["ALERT_SMTP_USERNAME"] != "")
          out = out pad "    auth_username: " quote(ENVIRON["ALERT_SMTP_USERNAME"]) "\n"
        if (ENVIRON["ALERT_SMTP_PASSWORD"] != "")
          out = out pad "    auth_password: " quote(ENVIRON["ALERT_SMTP_PASSWORD"]) "\n"
      }
      return out
    }
    BEGIN {
      for (name in ENVIRON)
        if (name ~ /^ALERT_/ && ENVIRON[name] ~ /[\001-\037\177]/)
          fail(name " holds a control character (a line break?)")
      webhook = ENVIRON["ALERT_WEBHOOK_URL"]; slack = ENVIRON["ALERT_SLACK_WEBHOOK_URL"]
      channel = ENVIRON["ALERT_SLACK_CHANNEL"]; mail_to = ENVIRON["ALERT_EMAIL_TO"]
      mail_from = ENVIRON["ALERT_EMAIL_FROM"]; smarthost = ENVIRON["ALERT_SMTP_SMARTHOST"]
      grafana = ENVIRON["ALERT_GRAFANA_URL"]
      if (grafana != "") { url("ALERT_GRAFANA_URL", grafana); sub(/\/+$/, "", grafana) }
      # Go templates of Alertmanager: each alert with its summary, description and dashboard.
      title = "[{{ .Status | toUpper }}{{ if eq .Status \"firing\" }} {{ .Alerts.Firing | len }}{{ end }}] {{ .CommonLabels.alertname }} ({{ .CommonLabels.severity }})"
      slack_text = "{{ range .Alerts }}*{{ .Annotations.summary }}*\n{{ .Annotations.description }}\n" \
        "{{ if .Annotations.dashboard }}<" grafana "{{ .Annotations.dashboard }}|dashboard>{{ end }}\n{{ end }}"
      mail_html = "{{ range .Alerts }}<p><b>{{ .Annotations.summary }}</b> ({{ .Status }})<br>{{ .Annotations.description }}" \
        "{{ if .Annotations.dashboard }}<br><a href=\"" grafana "{{ .Annotations.dashboard }}\">dashboard</a>{{ end }}</p>{{ end }}"
    }
    /^[ ]*# integrations/ {
      match($0, /^[ ]*/)
      printf "%s", integrations(substr($0, 1, RLENGTH))
      next
    }
    { print }
  ' "$1"
}

if [ "${1:-}" = render ]; then
  [ $# -eq 2 ] || { echo "usage: entrypoint.sh render TEMPLATE" >&2; exit 2; }
  render "$2"
  exit 0
fi
[ $# -ge 1 ] || { echo "usage: entrypoint.sh TEMPLATE [FLAGS...]" >&2; exit 2; }
template=$1
shift
rendered=${ALERTMANAGER_RENDERED:-/tmp/alertmanager.yml}
# The file may hold a Slack URL or an SMTP password: readable by this user only.
(umask 077 && render "$template" >"$rendered.new")
mv "$rendered.new" "$rendered"
exec "${ALERTMANAGER:-/bin/alertmanager}" --config.file="$rendered" "$@"
