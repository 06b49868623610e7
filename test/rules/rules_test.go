// Package rules checks the alerting rules with promtool, built from the Go
// module proxy by hack/prometheus-tools/build.sh: `promtool check rules`
// on the canonical file, `promtool test rules` on alerts.test.yaml, and
// that those unit tests show every alert both firing and clearing.
package rules

import (
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/keeperlb/keeperlb/internal/promtools"
)

const (
	rulesFile = "../../" + promtools.RulesFile
	testFile  = "alerts.test.yaml"
)

func promtool(t *testing.T) string {
	t.Helper()
	p, err := promtools.Binary("promtool")
	if err != nil {
		if os.Getenv("KEEPERLB_SKIP_LAB") == "1" {
			t.Skipf("%v (skipped: KEEPERLB_SKIP_LAB=1)", err)
		}
		t.Fatalf("the rules tests need promtool: %v (set KEEPERLB_SKIP_LAB=1 to skip explicitly)", err)
	}
	return p
}

func run(t *testing.T, argv ...string) {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", argv, err, out)
	}
	t.Logf("%v:\n%s", argv, out)
}

func TestPromtoolCheckRules(t *testing.T) {
	run(t, promtool(t), "check", "rules", rulesFile)
}

func TestPromtoolTestRules(t *testing.T) {
	run(t, promtool(t), "test", "rules", testFile)
}

type ruleFile struct {
	Groups []struct {
		Rules []struct {
			Alert string `json:"alert"`
		} `json:"rules"`
	} `json:"groups"`
}

type unitTests struct {
	RuleFiles []string `json:"rule_files"`
	Tests     []struct {
		AlertRuleTest []struct {
			EvalTime  string `json:"eval_time"`
			Alertname string `json:"alertname"`
			ExpAlerts []any  `json:"exp_alerts"`
		} `json:"alert_rule_test"`
	} `json:"tests"`
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestEveryAlertFiresAndClears: in one test case, each alert is expected
// firing at some time and expected quiet at a later one.
func TestEveryAlertFiresAndClears(t *testing.T) {
	var rf ruleFile
	readYAML(t, rulesFile, &rf)
	var ut unitTests
	readYAML(t, testFile, &ut)
	if !slices.Equal(ut.RuleFiles, []string{rulesFile}) {
		t.Fatalf("%s tests %v, want the canonical %s", testFile, ut.RuleFiles, rulesFile)
	}
	covered := map[string]bool{}
	for _, tc := range ut.Tests {
		// The earliest firing time of each alert in this case, and the
		// latest quiet one.
		fired, quiet := map[string]time.Duration{}, map[string]time.Duration{}
		for _, a := range tc.AlertRuleTest {
			at, err := time.ParseDuration(a.EvalTime)
			if err != nil {
				t.Fatalf("%s: eval_time %q: %v", a.Alertname, a.EvalTime, err)
			}
			if len(a.ExpAlerts) > 0 {
				if f, ok := fired[a.Alertname]; !ok || at < f {
					fired[a.Alertname] = at
				}
			} else if q, ok := quiet[a.Alertname]; !ok || at > q {
				quiet[a.Alertname] = at
			}
		}
		for name, f := range fired {
			if q, ok := quiet[name]; ok && q > f {
				covered[name] = true
			}
		}
	}
	n := 0
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			n++
			if !covered[r.Alert] {
				t.Errorf("%s has no unit test in %s showing it firing and then clearing", r.Alert, testFile)
			}
		}
	}
	if n == 0 {
		t.Fatalf("%s has no alerts", rulesFile)
	}
}
