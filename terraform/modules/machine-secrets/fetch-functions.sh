tries=${TERN_SECRETS_TRIES:-5}

get() {
  local n=1
  until aws ssm get-parameter --region "$region" --with-decryption --name "$params/$1" \
    --query Parameter.Value --output text; do
    [ "$n" -ge "$tries" ] && return 1
    n=$((n + 1))
    sleep 5
  done
}

# put PARAMETER FILE MODE OWNER: a file that cannot be refreshed is kept if it exists, so an
# SSM outage does not stop a restart.
put() {
  local value
  if ! value=$(get "$1"); then
    [ -s "$2" ] && { echo "tern-secrets: keeping $2 ($params/$1 unreadable)" >&2; return 0; }
    echo "tern-secrets: cannot read $params/$1" >&2
    return 1
  fi
  install -m "$3" -o "$4" -g "$4" /dev/null "$2.new"
  printf '%s\n' "$value" > "$2.new"
  mv -f "$2.new" "$2"
}
