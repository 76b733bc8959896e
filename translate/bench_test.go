package translate

import "testing"

// The hot path of the benchmark run: an ec2blob PATCH turned into an oscred PUT,
// and the oscred answer turned back; and the reverse direction.

func BenchmarkUpdateRequestEC2ToOscred(b *testing.B) {
	body := []byte(clientRequests[SideIBM][OpUpdate])
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		c, err := ParseRequest(SideIBM, OpUpdate, body)
		if err != nil {
			b.Fatal(err)
		}
		buf = AppendRequest(buf[:0], SideOscred, OpUpdate, c)
	}
}

func BenchmarkUpdateAnswerOscredToEC2(b *testing.B) {
	body := []byte(serverAnswers[SideOscred][OpUpdate])
	buf := make([]byte, 0, 512)
	v := View{Op: OpUpdate, Form: BlobObject, Secrets: true, ProjectID: "p1"}
	b.ReportAllocs()
	for b.Loop() {
		c, ok := ParseAnswer(SideOscred, body)
		if !ok {
			b.Fatal("not an answer")
		}
		buf = AppendAnswer(buf[:0], SideIBM, v, c)
	}
}

func BenchmarkUpdateRequestOscredToEC2(b *testing.B) {
	body := []byte(clientRequests[SideOscred][OpUpdate])
	cur := []byte(serverAnswers[SideIBM][OpGet])
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		c, err := ParseRequest(SideOscred, OpUpdate, body)
		if err != nil {
			b.Fatal(err)
		}
		m, _ := ParseAnswer(SideIBM, cur)
		m.Status, m.Description, m.HasDescription = c.Status, c.Description, c.HasDescription
		buf = AppendRequest(buf[:0], SideIBM, OpUpdate, m)
	}
}

func BenchmarkUpdateAnswerEC2ToOscred(b *testing.B) {
	body := []byte(serverAnswers[SideIBM][OpUpdate])
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		c, ok := ParseAnswer(SideIBM, body)
		if !ok {
			b.Fatal("not an answer")
		}
		buf = AppendAnswer(buf[:0], SideOscred, View{Op: OpUpdate}, c)
	}
}

func BenchmarkUpdateRequestKeystoneStringBlob(b *testing.B) {
	body := []byte(clientRequests[SideKeystone][OpUpdate])
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		c, err := ParseRequest(SideKeystone, OpUpdate, body)
		if err != nil {
			b.Fatal(err)
		}
		buf = AppendRequest(buf[:0], SideOscred, OpUpdate, c)
	}
}
