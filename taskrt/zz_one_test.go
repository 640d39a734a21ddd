package taskrt

import "testing"

func TestZZOne(t *testing.T) {
	_, err := Load([]byte("name: y\ninputs:\n  e: 6\"\n  t: 5m\ndefaults:\n  timeout: 0\n  retry: {attempts:3,backoff:0}\ntasks:\n  - id: s\n    run: s\n    para \n    inputs\n    outputs: []\n    params:\n     n\n"), nil, DefaultLimits())
	t.Log(err)
}
