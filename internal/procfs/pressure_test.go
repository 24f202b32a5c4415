package procfs

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/oomguard/oomguard/internal/policy"
)

func TestParsePressure(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    policy.PressureFile
		wantErr bool
	}{
		{name: "recorded cpu", in: string(readFixture(t, "pressure/cpu")), want: policy.PressureFile{
			Some:  policy.Pressure{Avg10: 8.03, Avg60: 32.28, Avg300: 20.45, Total: 103069176},
			Valid: true, HasFull: true,
		}},
		{name: "recorded io", in: string(readFixture(t, "pressure/io")), want: policy.PressureFile{
			Some:  policy.Pressure{Avg10: 0.01, Avg60: 0.21, Avg300: 0.34, Total: 3705307},
			Full:  policy.Pressure{Avg10: 0, Avg60: 0.12, Avg300: 0.27, Total: 2957969},
			Valid: true, HasFull: true,
		}},
		{name: "old cpu file without full", in: "some avg10=75.50 avg60=1.00 avg300=0.00 total=42\n", want: policy.PressureFile{
			Some: policy.Pressure{Avg10: 75.5, Avg60: 1, Total: 42}, Valid: true,
		}},
		{name: "100 percent", in: "some avg10=100.00 avg60=100.00 avg300=100.00 total=1\nfull avg10=100.00 avg60=100.00 avg300=100.00 total=1\n",
			want: policy.PressureFile{Some: policy.Pressure{Avg10: 100, Avg60: 100, Avg300: 100, Total: 1},
				Full: policy.Pressure{Avg10: 100, Avg60: 100, Avg300: 100, Total: 1}, Valid: true, HasFull: true}},
		{name: "empty", in: "", wantErr: true},
		{name: "only full", in: "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", wantErr: true},
		{name: "unknown kind", in: "most avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", wantErr: true},
		{name: "missing total", in: "some avg10=0.00 avg60=0.00 avg300=0.00\n", wantErr: true},
		{name: "bad average", in: "some avg10=0.0x avg60=0.00 avg300=0.00 total=0\n", wantErr: true},
		{name: "dangling dot", in: "some avg10=1. avg60=0.00 avg300=0.00 total=0\n", wantErr: true},
		{name: "no equals", in: "some avg10 avg60=0.00 avg300=0.00 total=0\n", wantErr: true},
		{name: "negative total", in: "some avg10=0.00 avg60=0.00 avg300=0.00 total=-1\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p policy.PressureFile
			err := ParsePressure([]byte(tt.in), &p)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(tt.want, p, cmp.Comparer(func(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 })); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestReaderPressure(t *testing.T) {
	r := fixtureFS(t).NewReader()
	var p policy.PressureFile
	if err := r.Pressure("memory", &p); err != nil {
		t.Fatal(err)
	}
	if !p.Valid || !p.HasFull || p.Some.Total != 0 {
		t.Errorf("memory pressure = %+v", p)
	}
	if err := r.Pressure("irq", &p); !IsGone(err) {
		t.Errorf("missing pressure file: err = %v", err)
	}
}

func FuzzParsePressure(f *testing.F) {
	f.Add(readFixture(f, "pressure/io"))
	f.Add([]byte("some avg10=1.5 avg60=0 avg300=0 total=0"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var p policy.PressureFile
		err := ParsePressure(b, &p)
		checkFuzzErr(t, "/proc/pressure/io", err)
		if err == nil && !p.Valid {
			t.Fatal("parsed without error but not Valid")
		}
	})
}
