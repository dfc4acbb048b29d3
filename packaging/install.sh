#!/bin/sh
# Installs Stella Telemetry from an extracted, verified offline kit (see INSTRUCTIONS.md):
#   sudo ./bootstrap/install.sh                 # airgap profile, /opt/stella, systemd service started
#   PROFILE=forensic PREFIX=/srv/stella ./bootstrap/install.sh
# Settings (environment): PROFILE (default airgap), PREFIX (/opt/stella), CONFIG_DIR (/etc/stella),
# DATA_DIR (/var/lib/stella), UNIT_DIR (/etc/systemd/system), SYSTEMD (auto | no: do not touch systemd),
# PACKAGE (auto | no). With PACKAGE=auto, a kit that carries the Debian package (release/stella_*.deb) on a
# machine with dpkg installs the package (/usr/bin/stella, its unit, the `stella` user) and points its unit
# at the profile's signed config with a drop-in; otherwise the plain binary goes to PREFIX.
set -eu

PROFILE=${PROFILE:-airgap}
PREFIX=${PREFIX:-/opt/stella}
CONFIG_DIR=${CONFIG_DIR:-/etc/stella}
DATA_DIR=${DATA_DIR:-/var/lib/stella}
UNIT_DIR=${UNIT_DIR:-/etc/systemd/system}
SYSTEMD=${SYSTEMD:-auto}
PACKAGE=${PACKAGE:-auto}

kit=$(cd "$(dirname "$0")/.." && pwd)

fail() {
  echo "install.sh: $*" >&2
  exit 1
}

case "$PROFILE" in
  default | forensic | airgap) ;;
  *) fail "PROFILE=$PROFILE is not a profile; use default, forensic or airgap" ;;
esac
for needed in bin/stella "config/$PROFILE.yaml" "config/$PROFILE.yaml.dsse.json" keys/signing-key.pub.pem bootstrap/stella.service.in; do
  [ -f "$kit/$needed" ] || fail "$kit/$needed is missing; extract the kit with: stella telemetry offline-kit verify KIT --trusted-key KEY --extract DIR"
done

# The kit's signer key, redaction profiles and the profile's signed config into CONFIG_DIR: serve
# --config-dir runs the config only while its envelope verifies.
install_config() {
  install -d -m 0755 "$CONFIG_DIR" "$CONFIG_DIR/trusted" "$CONFIG_DIR/redaction-profiles"
  install -m 0644 "$kit/keys/signing-key.pub.pem" "$CONFIG_DIR/trusted/signing-key.pub.pem"
  for profile in "$kit"/redaction-profiles/*.yaml; do
    install -m 0644 "$profile" "$CONFIG_DIR/redaction-profiles/"
  done
  install -m 0644 "$kit/config/$PROFILE.yaml.dsse.json" "$CONFIG_DIR/collector.yaml.dsse.json"
  install -m 0644 "$kit/config/$PROFILE.yaml" "$CONFIG_DIR/collector.yaml"
}

deb=
for candidate in "$kit"/release/stella_*.deb; do
  [ -f "$candidate" ] && deb=$candidate
done
if [ "$PACKAGE" != no ] && [ -n "$deb" ] && command -v dpkg >/dev/null 2>&1; then
  echo "installing the Debian package $(basename "$deb") with the $PROFILE profile (config $CONFIG_DIR)"
  dpkg -i "$deb"
  install_config
  dropin="$UNIT_DIR/stella.service.d"
  install -d -m 0755 "$dropin"
  cat >"$dropin/offline-kit.conf" <<UNIT
# Written by the offline kit's install.sh: run the kit's signed $PROFILE config.
[Service]
ExecStart=
ExecStart=/usr/bin/stella telemetry serve --profile $PROFILE --data-dir /var/lib/stella --config-dir $CONFIG_DIR --trusted-key $CONFIG_DIR/trusted/signing-key.pub.pem --log-format json
UNIT
  chmod 0644 "$dropin/offline-kit.conf"
  if [ "$SYSTEMD" = no ] || [ ! -d /run/systemd/system ]; then
    echo "installed; systemd is not running here, start it by hand: /usr/bin/stella telemetry serve --profile $PROFILE --data-dir /var/lib/stella --config-dir $CONFIG_DIR --trusted-key $CONFIG_DIR/trusted/signing-key.pub.pem"
    exit 0
  fi
  systemctl daemon-reload
  systemctl restart stella.service
  echo "stella.service is running; check it with: systemctl status stella; curl -s http://127.0.0.1:4319/readyz"
  exit 0
fi

echo "installing the $PROFILE profile into $PREFIX (config $CONFIG_DIR, data $DATA_DIR)"
install -d -m 0755 "$PREFIX/bin"
install -d -m 0750 "$DATA_DIR"
install -m 0755 "$kit/bin/stella" "$PREFIX/bin/stella"
install -m 0644 "$kit/INSTRUCTIONS.md" "$PREFIX/INSTRUCTIONS.md"
install_config

unit="$UNIT_DIR/stella.service"
install -d -m 0755 "$UNIT_DIR"
sed -e "s|@PREFIX@|$PREFIX|g" -e "s|@CONFIG_DIR@|$CONFIG_DIR|g" -e "s|@DATA_DIR@|$DATA_DIR|g" -e "s|@PROFILE@|$PROFILE|g" \
  "$kit/bootstrap/stella.service.in" >"$unit"
chmod 0644 "$unit"

if [ "$SYSTEMD" = no ] || [ "$(id -u)" -ne 0 ] || ! command -v systemctl >/dev/null 2>&1; then
  echo "wrote $unit; not starting it (SYSTEMD=no, not root, or no systemctl)"
  echo "start it by hand: $PREFIX/bin/stella telemetry serve --profile $PROFILE --data-dir $DATA_DIR --config-dir $CONFIG_DIR --trusted-key $CONFIG_DIR/trusted/signing-key.pub.pem"
  exit 0
fi
if ! id stella >/dev/null 2>&1; then
  useradd --system --home-dir "$DATA_DIR" --shell /usr/sbin/nologin stella
fi
chown -R stella:stella "$DATA_DIR"
systemctl daemon-reload
systemctl enable --now stella.service
echo "stella.service is running; check it with: systemctl status stella; curl -s http://127.0.0.1:4319/readyz"
