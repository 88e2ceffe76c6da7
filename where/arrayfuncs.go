package where

// Array concatenation: || between arrays and elements, array_cat,
// array_append, array_prepend and array_ndims (anycompatible semantics).

// arrayConcat builds a || b where at least one side is an array.
func (tr *transformer) arrayConcat(l, r node, loc int32) (node, error) {
	lt, rt := l.typ(), r.typ()
	switch {
	case lt.Array && !rt.Array && !rt.isUnknown():
		return tr.arrayAppend("||", l, r, loc)
	case rt.Array && !lt.Array && !lt.isUnknown():
		return tr.arrayPrepend("||", l, r, loc)
	}
	return tr.arrayCat("||", l, r, loc)
}

// arrayType finds the common element type of the arguments in argument
// order (array arguments contribute their element type), as anycompatible
// resolution does; isArray tells which arguments are the array ones.
func (tr *transformer) arrayType(name string, args []node, isArray []bool, loc int32) (Type, error) {
	var types []Type
	for i, a := range args {
		t := a.typ()
		switch {
		case t.isUnknown():
		case isArray[i] != t.Array:
			return Type{}, errAt(loc, "function %s does not exist", sigString(name, args))
		case t.Array:
			types = append(types, t.elem())
		default:
			types = append(types, t)
		}
	}
	ct, ok := commonType(types) // all unknown: text
	if !ok {
		return Type{}, errAt(loc, "%s types cannot be matched", name)
	}
	return ct, nil
}

func (tr *transformer) arrayCat(name string, l, r node, loc int32) (node, error) {
	et, err := tr.arrayType(name, []node{l, r}, []bool{true, true}, loc)
	if err != nil {
		return nil, err
	}
	if l, err = tr.coerceArray(l, et.arrayOf(), loc); err != nil {
		return nil, err
	}
	if r, err = tr.coerceArray(r, et.arrayOf(), loc); err != nil {
		return nil, err
	}
	return fold(&funcNode{name: name, infix: name == "||", args: []node{l, r}, t: et.arrayOf(), fn: func(v []any) (any, error) {
		return catArrays(v[0], v[1])
	}}, loc)
}

func (tr *transformer) arrayAppend(name string, a, x node, loc int32) (node, error) {
	et, err := tr.arrayType(name, []node{a, x}, []bool{true, false}, loc)
	if err != nil {
		return nil, err
	}
	if a, err = tr.coerceArray(a, et.arrayOf(), loc); err != nil {
		return nil, err
	}
	if x, err = tr.coerce(x, et, loc); err != nil {
		return nil, err
	}
	return fold(&funcNode{name: name, infix: name == "||", args: []node{a, x}, t: et.arrayOf(), fn: func(v []any) (any, error) {
		return pushElem(v[0], v[1], false)
	}}, loc)
}

func (tr *transformer) arrayPrepend(name string, x, a node, loc int32) (node, error) {
	et, err := tr.arrayType(name, []node{x, a}, []bool{false, true}, loc)
	if err != nil {
		return nil, err
	}
	if a, err = tr.coerceArray(a, et.arrayOf(), loc); err != nil {
		return nil, err
	}
	if x, err = tr.coerce(x, et, loc); err != nil {
		return nil, err
	}
	return fold(&funcNode{name: name, infix: name == "||", args: []node{x, a}, t: et.arrayOf(), fn: func(v []any) (any, error) {
		return pushElem(v[1], v[0], true)
	}}, loc)
}

func (tr *transformer) arrayNdims(args []node, loc int32) (node, error) {
	if len(args) != 1 {
		return nil, errAt(loc, "function %s does not exist", sigString("array_ndims", args))
	}
	if args[0].typ().isUnknown() {
		return nil, errAt(loc, "could not determine polymorphic type because input has type unknown")
	}
	if !args[0].typ().Array {
		return nil, errAt(loc, "function %s does not exist", sigString("array_ndims", args))
	}
	return fold(&funcNode{name: "array_ndims", args: args, t: tInt4, strict: true, fn: func(v []any) (any, error) {
		a := v[0].(*array)
		if len(a.elems) == 0 {
			return nil, nil
		}
		return int64(len(a.dims)), nil
	}}, loc)
}

// catArrays is array_cat: NULL or empty inputs yield the other input;
// otherwise the dimensions must be compatible.
func catArrays(x, y any) (any, error) {
	if x == nil {
		return y, nil
	}
	if y == nil {
		return x, nil
	}
	a, b := x.(*array), y.(*array)
	switch {
	case len(a.elems) == 0:
		return b, nil
	case len(b.elems) == 0:
		return a, nil
	}
	bad := errorf("cannot concatenate incompatible arrays")
	var dims []int
	switch {
	case len(a.dims) == len(b.dims):
		if !equalDims(a.dims[1:], b.dims[1:]) {
			return nil, bad
		}
		dims = append([]int{a.dims[0] + b.dims[0]}, a.dims[1:]...)
	case len(a.dims)+1 == len(b.dims):
		if !equalDims(a.dims, b.dims[1:]) {
			return nil, bad
		}
		dims = append([]int{b.dims[0] + 1}, b.dims[1:]...)
	case len(a.dims) == len(b.dims)+1:
		if !equalDims(a.dims[1:], b.dims) {
			return nil, bad
		}
		dims = append([]int{a.dims[0] + 1}, a.dims[1:]...)
	default:
		return nil, bad
	}
	elems := append(append(make([]any, 0, len(a.elems)+len(b.elems)), a.elems...), b.elems...)
	return &array{dims: dims, elems: elems}, nil
}

// pushElem is array_append (front=false) and array_prepend (front=true):
// a NULL or empty array becomes a one-element array.
func pushElem(arr, x any, front bool) (any, error) {
	if arr == nil || len(arr.(*array).elems) == 0 {
		return &array{dims: []int{1}, elems: []any{x}}, nil
	}
	a := arr.(*array)
	if len(a.dims) != 1 {
		return nil, errorf("argument must be empty or one-dimensional array")
	}
	elems := make([]any, 0, len(a.elems)+1)
	if front {
		elems = append(append(elems, x), a.elems...)
	} else {
		elems = append(append(elems, a.elems...), x)
	}
	return &array{dims: []int{len(elems)}, elems: elems}, nil
}
