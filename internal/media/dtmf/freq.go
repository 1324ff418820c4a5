package dtmf

// The DTMF keypad (ITU-T Q.23): a tone is one low-group (row) frequency
// plus one high-group (column) frequency.
var (
	rowFreqs = [4]float64{697, 770, 852, 941}
	colFreqs = [4]float64{1209, 1336, 1477, 1633}
	keypad   = [4][4]byte{
		{'1', '2', '3', 'A'},
		{'4', '5', '6', 'B'},
		{'7', '8', '9', 'C'},
		{'*', '0', '#', 'D'},
	}
)

// Frequencies returns the row and column frequencies of a tone character.
func Frequencies(tone byte) (low, high float64, ok bool) {
	if tone >= 'a' && tone <= 'd' {
		tone -= 'a' - 'A'
	}
	for r := range keypad {
		for c := range keypad[r] {
			if keypad[r][c] == tone {
				return rowFreqs[r], colFreqs[c], true
			}
		}
	}
	return 0, 0, false
}
