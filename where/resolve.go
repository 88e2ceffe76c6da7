package where

// sig is one operator signature (left, right). Unary operators use a zero
// left type.
type sig struct{ l, r Type }

func pairs(ls, rs []Type) []sig {
	var out []sig
	for _, l := range ls {
		for _, r := range rs {
			out = append(out, sig{l, r})
		}
	}
	return out
}

func same(ts ...Type) []sig {
	out := make([]sig, len(ts))
	for i, t := range ts {
		out[i] = sig{t, t}
	}
	return out
}

var (
	intTypes   = []Type{tInt2, tInt4, tInt8}
	floatTypes = []Type{tFloat4, tFloat8}
	dtTypes    = []Type{tDate, tTimestamp, tTimestamptz}
)

// cmpSigs are the scalar comparison operators' signatures (pg_operator
// entries for = <> < > <= >= between the supported types).
var cmpSigs = concatSigs(pairs(intTypes, intTypes), pairs(floatTypes, floatTypes), pairs(dtTypes, dtTypes),
	same(tNumeric, tText, tBpchar, tBytea, tUUID, tBool, tTime, tInterval, tJSONB))

var arithSigs = concatSigs(pairs(intTypes, intTypes), pairs(floatTypes, floatTypes), same(tNumeric))

var modSigs = same(tInt2, tInt4, tInt8, tNumeric)

var plusSigs = concatSigs(arithSigs, []sig{
	{tDate, tInt4}, {tInt4, tDate}, {tDate, tInterval}, {tInterval, tDate}, {tTimestamp, tInterval},
	{tInterval, tTimestamp}, {tTimestamptz, tInterval}, {tInterval, tTimestamptz}, {tInterval, tInterval},
	{tTime, tInterval}, {tInterval, tTime}, {tDate, tTime}, {tTime, tDate},
})

var minusSigs = concatSigs(arithSigs, []sig{
	{tDate, tInt4}, {tDate, tDate}, {tDate, tInterval}, {tTimestamp, tInterval}, {tTimestamptz, tInterval},
	{tTimestamp, tTimestamp}, {tTimestamptz, tTimestamptz}, {tInterval, tInterval}, {tTime, tTime}, {tTime, tInterval},
})

var likeSigs = []sig{{tText, tText}, {tBpchar, tText}}

var negSigs = []sig{{r: tInt2}, {r: tInt4}, {r: tInt8}, {r: tFloat4}, {r: tFloat8}, {r: tNumeric}, {r: tInterval}}

func concatSigs(lists ...[]sig) []sig {
	var out []sig
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// sigsFor returns the candidate signatures of a binary operator.
func sigsFor(op string) []sig {
	switch op {
	case "=", "<>", "<", ">", "<=", ">=":
		return cmpSigs
	case "+":
		return plusSigs
	case "-":
		return minusSigs
	case "*":
		return concatSigs(arithSigs, ivScaleSigs)
	case "/":
		return concatSigs(arithSigs, ivScaleSigs[:1])
	case "^":
		return powSigs
	case "&", "|", "#":
		return bitSigs
	case "%":
		return modSigs
	case "~~", "!~~", "~~*", "!~~*":
		return likeSigs
	}
	return nil
}

// resolveOp implements Postgres' operator resolution (oper_select_candidate
// and func_select_candidate) over the candidate signatures. For unary
// operators lt is the zero Type. On failure, ambiguous tells whether
// several candidates fitted ("operator is not unique").
func resolveOp(cands []sig, lt, rt Type) (s sig, ok bool, ambiguous bool) {
	in := []Type{lt, rt}
	unary := lt == Type{}
	if unary {
		in = in[1:]
	}
	args := func(s sig) []Type {
		if unary {
			return []Type{s.r}
		}
		return []Type{s.l, s.r}
	}
	// exact match, treating one unknown side as the other side's type
	probe := sig{lt, rt}
	if !unary && lt.isUnknown() && !rt.isUnknown() {
		probe.l = rt
	} else if !unary && rt.isUnknown() && !lt.isUnknown() {
		probe.r = lt
	}
	for _, c := range cands {
		if c == probe {
			return c, true, false
		}
	}
	var viable [][]Type
	for _, c := range cands {
		a := args(c)
		ok := true
		for i := range a {
			ok = ok && canImplicit(in[i], a[i])
		}
		if ok {
			viable = append(viable, a)
		}
	}
	best, ok := selectCandidate(viable, in)
	if !ok {
		return sig{}, false, len(viable) > 1
	}
	if unary {
		return sig{r: best[0]}, true, false
	}
	return sig{best[0], best[1]}, true, false
}

// selectCandidate is func_select_candidate's heuristics.
func selectCandidate(c [][]Type, in []Type) ([]Type, bool) {
	if len(c) == 1 {
		return c[0], true
	}
	if len(c) == 0 {
		return nil, false
	}
	c = keepBest(c, func(a []Type) int {
		n := 0
		for i := range a {
			if !in[i].isUnknown() && a[i] == in[i] {
				n++
			}
		}
		return n
	})
	if len(c) == 1 {
		return c[0], true
	}
	c = keepBest(c, func(a []Type) int {
		n := 0
		for i := range a {
			if !in[i].isUnknown() && (a[i] == in[i] || a[i].preferred() && a[i].category() == in[i].category()) {
				n++
			}
		}
		return n
	})
	if len(c) == 1 {
		return c[0], true
	}
	if kept := resolveUnknowns(c, in); kept != nil {
		if len(kept) == 1 {
			return kept[0], true
		}
		c = kept
	}
	return knownTypeHeuristic(c, in)
}

// keepBest keeps the candidates with the highest score.
func keepBest(c [][]Type, score func([]Type) int) [][]Type {
	best := -1
	var out [][]Type
	for _, a := range c {
		s := score(a)
		if s > best {
			best, out = s, nil
		}
		if s == best {
			out = append(out, a)
		}
	}
	return out
}

// resolveUnknowns chooses categories for unknown-typed inputs (string
// category wins; preferred types win within the category) and returns the
// candidates that fit, or nil when there is nothing to resolve.
func resolveUnknowns(c [][]Type, in []Type) [][]Type {
	cat := make([]byte, len(in))
	pref := make([]bool, len(in))
	any := false
	for i := range in {
		if !in[i].isUnknown() {
			continue
		}
		any = true
		conflict := false
		for j, a := range c {
			ac, ap := a[i].category(), a[i].preferred()
			switch {
			case j == 0:
				cat[i], pref[i] = ac, ap
			case ac == cat[i]:
				pref[i] = pref[i] || ap
			case ac == 'S':
				cat[i], pref[i] = ac, ap
			default:
				conflict = true
			}
		}
		if conflict && cat[i] != 'S' {
			return nil
		}
	}
	if !any {
		return nil
	}
	var kept [][]Type
	for _, a := range c {
		keep := true
		for i := range in {
			if in[i].isUnknown() && (a[i].category() != cat[i] || pref[i] && !a[i].preferred()) {
				keep = false
			}
		}
		if keep {
			kept = append(kept, a)
		}
	}
	return kept
}

// knownTypeHeuristic: if all known inputs share one type, assume unknowns
// have it too and accept a unique candidate that fits.
func knownTypeHeuristic(c [][]Type, in []Type) ([]Type, bool) {
	known := tUnknown
	for _, t := range in {
		if t.isUnknown() {
			continue
		}
		if !known.isUnknown() && known != t {
			return nil, false
		}
		known = t
	}
	if known.isUnknown() {
		return nil, false
	}
	var found []Type
	for _, a := range c {
		ok := true
		for i := range a {
			ok = ok && canImplicit(known, a[i])
		}
		if ok {
			if found != nil {
				return nil, false
			}
			found = a
		}
	}
	return found, found != nil
}
